"""P3: gradient reversal, DANN schedules, domain detection, hw2_3.sh's CSV and every bad input."""

import csv
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import REPO, assert_user_error, make_digit_dataset, run, run_module, run_script
from hw2lib.checkpoints import save_checkpoint
from hw2lib.cli import UserError
from hw2lib.digit_cnn import ClassifierConfig, DigitClassifier
from hw2lib.run_record import read_record, training_args
from p3.dann import DomainAdversarialLoss, DomainDiscriminator, adaptation_weight, annealed_lr, grad_reverse
from p3.table import domain_of


@pytest.mark.parametrize("lambd", [0.0, 0.3, 1.0])
def test_gradient_reversal_backward_is_minus_lambda_grad(lambd):
    x = torch.randn(5, 4, requires_grad=True)
    weights = torch.randn(5, 4)
    y = grad_reverse(x, lambd)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, -lambd * weights)


def test_adaptation_weight_schedule():
    assert adaptation_weight(0.0) == 0.0
    assert adaptation_weight(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1) == pytest.approx(0.986614, abs=1e-6)
    assert adaptation_weight(1.0) == pytest.approx(0.999909, abs=1e-6)


def test_annealed_lr_schedule():
    assert annealed_lr(0.0) == 0.01
    assert annealed_lr(0.5) == pytest.approx(0.01 / 6**0.75) == pytest.approx(0.0026084, abs=1e-7)
    assert annealed_lr(1.0) == pytest.approx(0.01 / 11**0.75) == pytest.approx(0.0016556, abs=1e-7)
    assert annealed_lr(1.0, lr0=0.1) == pytest.approx(0.016556, abs=1e-6)


def test_domain_loss_trains_discriminator_and_confuses_features():
    torch.manual_seed(0)
    loss_fn = DomainAdversarialLoss(DomainDiscriminator(8, hidden=16))
    f_s = torch.randn(6, 8, requires_grad=True)
    f_t = torch.randn(6, 8, requires_grad=True)
    loss, acc = loss_fn(f_s, f_t, lambd=1.0)
    loss.backward()
    plain_s = torch.autograd.grad(DomainAdversarialLoss(loss_fn.discriminator)(f_s, f_t, -1.0)[0], f_s)[0]
    torch.testing.assert_close(f_s.grad, -plain_s)  # reversed: features move to *increase* the domain loss
    assert all(p.grad is not None for p in loss_fn.parameters())
    with torch.no_grad():  # a discriminator that says "source" for everything is right on exactly half
        last = loss_fn.discriminator.net[-1]
        last.weight.zero_()
        last.bias.fill_(3.0)
    assert loss_fn(f_s, f_t, lambd=1.0)[1] == 0.5


def test_classifier_returns_logits_and_features():
    for config in (ClassifierConfig(), ClassifierConfig(grayscale=True, standardize=True)):
        logits, feats = DigitClassifier(config).eval()(torch.rand(4, 3, 28, 28) * 2 - 1)
        assert logits.shape == (4, 10) and feats.shape == (4, config.feature_dim)


@pytest.mark.parametrize(
    "path, domain",
    [
        ("/data/hw2_data/digits/svhn/test", "svhn"),
        ("/x/USPS/test", "usps"),
        ("/x/Svhn_private", "svhn"),
        ("relative/usps", "usps"),
    ],
)
def test_domain_of(path, domain):
    assert domain_of(path) == domain


@pytest.mark.parametrize("path, why", [("/data/mnistm/test", "neither"), ("/data/svhn_vs_usps/test", "both")])
def test_domain_of_rejects_ambiguous_paths(path, why):
    with pytest.raises(UserError, match=why):
        domain_of(path)


KNOWN_LABEL = 7


@pytest.fixture(scope="module")
def usps_checkpoint(tmp_path_factory) -> Path:
    """A classifier in the shipped layout whose answer is known: its head ignores the features and its
    bias favours class 7, so every image must be labelled 7."""
    torch.manual_seed(0)
    model = DigitClassifier(ClassifierConfig(grayscale=True, standardize=True)).eval()
    with torch.no_grad():
        head = model.head[-1]
        head.weight.zero_()
        head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(KNOWN_LABEL), 10).float())
    path = tmp_path_factory.mktemp("ckpt") / "usps.pt"
    save_checkpoint({"model": model.state_dict(), "config": model.config.to_dict()}, path)
    return path


def write_images(folder: Path) -> list[str]:
    """Mixed inputs: RGB, grayscale, RGBA, palette, an odd size and a JPEG, named out of order."""
    folder.mkdir(parents=True)
    Image.new("RGB", (28, 28), (10, 200, 30)).save(folder / "b.png")
    Image.new("L", (28, 28), 128).save(folder / "a.png")
    Image.new("RGBA", (28, 28), (1, 2, 3, 128)).save(folder / "10.png")
    Image.new("P", (28, 28), 5).save(folder / "2.png")
    Image.new("RGB", (32, 40), (200, 10, 10)).save(folder / "c.png")
    Image.new("RGB", (28, 28), (90, 90, 90)).save(folder / "d.jpg")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return ["10.png", "2.png", "a.png", "b.png", "c.png", "d.jpg"]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


@pytest.mark.slow
def test_predict_csv_header_order_and_conversion(usps_checkpoint, tmp_path):
    names = write_images(tmp_path / "usps" / "test")
    out = tmp_path / "pred.csv"
    result = run_module("p3.predict", tmp_path / "usps" / "test", out, "--checkpoint", usps_checkpoint)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert rows[0] == ["image_name", "label"]
    assert [r[0] for r in rows[1:]] == names
    assert [r[1] for r in rows[1:]] == [str(KNOWN_LABEL)] * len(names)


@pytest.mark.slow
@pytest.mark.parametrize("domain", ["usps", "svhn"])
def test_hw2_3_with_shipped_checkpoints(domain, tmp_path):
    if not (REPO / "p3" / "checkpoints" / f"{domain}_dann-plus.pt").exists():
        pytest.skip("shipped checkpoint missing: run bash hw2_download.sh")
    make_digit_dataset(tmp_path / domain, n=25, seed=1, mode="L" if domain == "usps" else "RGB", splits=("test",))
    folder = tmp_path / domain / "data"
    out = tmp_path / "out" / "pred.csv"
    result = run_script("hw2_3.sh", folder, out)
    assert result.returncode == 0, result.stderr
    rows = read_csv(out)
    assert rows[0] == ["image_name", "label"] and len(rows) == 26
    assert [r[0] for r in rows[1:]] == sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_bad_inputs(usps_checkpoint, tmp_path):
    ck = ["--checkpoint", usps_checkpoint]
    out = tmp_path / "out.csv"
    assert_user_error(
        run_module("p3.predict", tmp_path / "usps_missing", out, *ck), "usps_missing", "no such directory"
    )
    (tmp_path / "usps_empty").mkdir()
    assert_user_error(run_module("p3.predict", tmp_path / "usps_empty", out, *ck), "no image files")
    broken = tmp_path / "usps_broken"
    write_images(broken)
    (broken / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    assert_user_error(run_module("p3.predict", broken, out, *ck), str(broken / "e.png"), "not a readable image")
    good = tmp_path / "usps_good"
    write_images(good)
    assert_user_error(run_module("p3.predict", tmp_path / "mnistm", out, *ck), "mnistm", "no such directory")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    assert_user_error(run_module("p3.predict", good, tmp_path / "blocker" / "out.csv", *ck), "cannot write")
    assert_user_error(run_module("p3.predict", good, tmp_path, *ck), "is a directory")
    assert_user_error(run_module("p3.predict", good, out, "--checkpoint", tmp_path / "none.pt"), "no such file")
    assert not out.exists(), "no CSV may be written on failure"
    result = run_script("hw2_3.sh", good)
    assert result.returncode == 2 and "usage: bash hw2_3.sh TEST_DIR OUT_CSV" in result.stderr


def test_train_all_remakes_every_shipped_run_with_its_logged_arguments():
    """recipes/p3_train_all.sh, printing its commands (P3_PRINT_ONLY=1), has one command per shipped log,
    and that command, parsed by its trainer's own parser, gives exactly the arguments of every sitting
    in the run's record (data folders by name; where a run wrote, on which device and how far each
    sitting went are not the recipe)."""
    from p3 import refine, train

    printed = run(["bash", REPO / "recipes" / "p3_train_all.sh", "/D", "/R"], env={"P3_PRINT_ONLY": "1"})
    assert printed.returncode == 0, printed.stderr
    commands = {}
    for line in printed.stdout.splitlines():
        module, *argv = line.split()
        parser = {"p3.train": train.build_parser, "p3.refine": refine.build_parser}[module]()
        args = vars(parser.parse_args(argv))
        commands[Path(args["out_dir"]).name] = (module, parser, args)
    logs = sorted((REPO / "logs" / "p3" / "shipped").glob("*/record.jsonl"))
    assert {p.parent.name for p in logs} <= set(commands), "a shipped run that the script does not make"

    def recipe(args: dict) -> dict:
        names = {k: [Path(s).name for s in v] if isinstance(v, list) else Path(v).name
                 for k, v in args.items() if k in ("source", "target")}  # fmt: skip
        return {**{k: v for k, v in training_args(args).items() if k != "init_from"}, **names}

    for path in logs:
        module, parser, args = commands[path.parent.name]
        for sitting in read_record(path.parent):
            logged = dict(sitting["args"])
            for flag in set(args) - set(logged):  # added since that run: its default must be what the run did
                assert args[flag] == parser.get_default(flag), (
                    f"{path}: --{flag} was not logged, yet the script sets it"
                )
                logged[flag] = args[flag]
            assert recipe(logged) == recipe(args), f"{path}: {module} {path.parent.name}"
        if module == "p3.refine":  # refined from its own first step
            assert Path(args["init_from"]).parent.name == "-first_s".join(path.parent.name.rsplit("_s", 1))
