"""P1: a class-conditional DDPM with classifier-free guidance for 28×28 MNIST-M digits."""
