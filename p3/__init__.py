"""P3: domain-adversarial training (DANN) from MNIST-M to SVHN and to USPS."""
