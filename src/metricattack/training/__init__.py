"""Re-ID training: identity sampler, losses, augmentation, schedule and the loop."""
