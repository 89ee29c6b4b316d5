"""Operating-system helpers shared by every layer: atomic writes, the folder lock, signals, torchrun,
device and seeding, the cache root. They know nothing about re-ID."""
