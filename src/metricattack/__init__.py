"""metricattack: adversarial metric attacks and defenses for person re-identification."""

__version__ = "0.1.0"
