"""Training-time defences: augmentation (AugMix, PixMix) and adversarial training, one file each."""
