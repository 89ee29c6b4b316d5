"""Synthetic pedestrians: the embedded default data set, rendered procedurally into a Market-1501 tree.

Modules: ``config`` (options, palettes), ``identities`` (looks, cameras, tracks), ``canvas`` and ``person``
(drawing), ``render`` (one image), ``writer`` (split plan, tree), ``cache``, ``contact_sheet``; the tracking
scene: ``scene`` (its plan: paths, boxes, visibility, detections) and ``scene_render`` (frames, MOTChallenge folder, cache).
"""

from metricattack.data.synthetic.cache import cached_synthetic
from metricattack.data.synthetic.config import SyntheticConfig
from metricattack.data.synthetic.contact_sheet import contact_sheet
from metricattack.data.synthetic.scene import SceneConfig
from metricattack.data.synthetic.scene_render import cached_scene, write_scene
from metricattack.data.synthetic.writer import generate

__all__ = ["SceneConfig", "SyntheticConfig", "cached_scene", "cached_synthetic", "contact_sheet", "generate", "write_scene"]
