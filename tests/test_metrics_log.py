"""hw2lib/metrics_log.py: the metrics.jsonl every run writes, reads back and trims on resume."""

from hw2lib.metrics_log import append_metrics, drop_log_after, read_metrics


def test_records_come_back_in_order_and_filtered_by_a_key(tmp_path):
    append_metrics(tmp_path, {"step": 50, "loss": 0.5})
    append_metrics(tmp_path, {"step": 100, "loss": 0.25, "val_accuracy": 0.75})
    with open(tmp_path / "metrics.jsonl", "a") as log:
        log.write("\n")  # a blank line (a hand edit, a cut-off write) is skipped
    append_metrics(tmp_path, {"step": 150, "loss": 0.125})
    log = tmp_path / "metrics.jsonl"
    assert [r["step"] for r in read_metrics(log)] == [50, 100, 150]
    assert read_metrics(log, having="val_accuracy") == [{"step": 100, "loss": 0.25, "val_accuracy": 0.75}]
    assert read_metrics(log, having="domain_acc") == []


def test_resume_drops_the_records_past_its_step_and_keeps_the_rest_byte_for_byte(tmp_path):
    log = tmp_path / "metrics.jsonl"
    kept = '{"step": 50, "setting": "s = 4, φ = 1"}\n{"step": 100,  "loss": 0.5}\n'  # not json.dumps' spelling
    log.write_text(kept + '{"step": 150, "loss": 0.4}\n{"step": 200, "loss": 0.3}\n')
    drop_log_after(log, 100)
    assert log.read_text() == kept
    drop_log_after(log, 0)
    assert log.read_text() == ""
    drop_log_after(tmp_path / "absent.jsonl", 10)  # nothing to trim: no file appears
    assert not (tmp_path / "absent.jsonl").exists()
