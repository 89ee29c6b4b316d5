"""Sequences from a MOTChallenge folder, a folder of frames and a video file; MOTChallenge files read back as written; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from metricattack.errors import InputError
from metricattack.video.motfiles import (
    FrameBoxes,
    SeqInfo,
    read_detections,
    read_ground_truth,
    read_seqinfo,
    read_tracks,
    write_detections,
    write_ground_truth,
    write_seqinfo,
    write_tracks,
)
from metricattack.video.sequence import open_sequence

WIDTH, HEIGHT, FRAMES = 32, 24, 4


def frames_rgb() -> list[np.ndarray]:
    """Frame t is filled with the colour (40 t, 100, 200 - 40 t), so every frame and channel is told apart."""
    return [np.broadcast_to(np.array([40 * t, 100, 200 - 40 * t], np.uint8), (HEIGHT, WIDTH, 3)).copy() for t in range(FRAMES)]


def write_mot_folder(root, det_text: str | None = "1,-1,2,3,10,12,0.9,-1,-1,-1\n3,-1,20,5,8,10,0.5,-1,-1,-1\n"):
    (root / "img1").mkdir(parents=True)
    for t, image in enumerate(frames_rgb()):
        Image.fromarray(image).save(root / "img1" / f"{t + 1:06d}.png")
    write_seqinfo(root / "seqinfo.ini", SeqInfo("TINY-01", FRAMES, (WIDTH, HEIGHT), 5.0, image_ext=".png"))
    if det_text is not None:
        (root / "det").mkdir()
        (root / "det" / "det.txt").write_text(det_text)
    return root


def test_mot_folder_frames_detections_and_ground_truth(tmp_path):
    root = write_mot_folder(tmp_path / "TINY-01")
    (root / "gt").mkdir()
    # MOT17 columns: frame,id,x,y,w,h,consider,class,visibility
    (root / "gt" / "gt.txt").write_text(
        "1,1,2,3,10,12,1,1,1\n"  # a pedestrian
        "2,2,4,4,5,5,0,1,1\n"  # consider 0: dropped
        "2,3,1,1,6,6,1,3,1\n"  # a car (class 3): dropped
        "4,4,8,2,6,9,1,7,0.5\n"  # a static person: a distractor
    )
    sequence = open_sequence(root)
    assert (sequence.name, sequence.frame_count, sequence.size, sequence.fps) == ("TINY-01", FRAMES, (WIDTH, HEIGHT), 5.0)
    for t, expected in enumerate(frames_rgb()):
        assert sequence.frame(t).dtype == np.uint8 and np.array_equal(sequence.frame(t), expected)
    assert [len(frame) for frame in sequence.detections] == [1, 0, 1, 0]
    # 1-based pixels in the file, 0-based in memory
    assert np.allclose(sequence.detections[2].boxes, [[19, 4, 8, 10]]) and sequence.detections[2].confidences[0] == 0.5
    truth = sequence.ground_truth
    assert [frame.ids.tolist() for frame in truth.frames] == [[1], [], [], []]
    assert [len(boxes) for boxes in truth.distractors] == [0, 0, 0, 1]
    assert np.allclose(truth.distractors[3], [[7, 1, 6, 9]])


def test_frame_folder_and_video_file(tmp_path):
    cv2 = pytest.importorskip("cv2")
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, image in enumerate(frames_rgb()):
        Image.fromarray(image).save(folder / f"f{t:03d}.png")
    sequence = open_sequence(folder)
    assert sequence.frame_count == FRAMES and np.array_equal(sequence.frame(3), frames_rgb()[3])
    assert sequence.detections is None and sequence.ground_truth is None
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (WIDTH, HEIGHT))
    for image in frames_rgb():
        writer.write(image[:, :, ::-1])
    writer.release()
    clip = open_sequence(video)
    assert (clip.frame_count, clip.size, clip.fps) == (FRAMES, (WIDTH, HEIGHT), 5.0)
    for t in (0, 1, 3, 2):  # in order, then a seek back
        assert np.abs(clip.frame(t).astype(int) - frames_rgb()[t]).max() <= 8  # JPEG-compressed frames
    assert len(clip.content_hash()) == 64


def test_files_read_back_as_written(tmp_path):
    frames = [
        FrameBoxes(np.array([[1.25, 2.5, 10, 12], [3, 4, 5, 6]]), np.array([0.9, 0.25]), np.array([7, 8])),
        FrameBoxes.empty(),
        FrameBoxes(np.array([[5, 6, 7, 8]]), np.array([1.0]), np.array([7])),
    ]
    write_tracks(tmp_path / "tracks.txt", frames)
    assert (tmp_path / "tracks.txt").read_text().splitlines()[0] == "1,7,2.25,3.50,10.00,12.00,0.9,-1,-1,-1"  # 1-based in the file
    back = read_tracks(tmp_path / "tracks.txt", 3)
    write_detections(tmp_path / "det.txt", frames)
    dets = read_detections(tmp_path / "det.txt", 3, (100, 100))
    write_ground_truth(tmp_path / "gt.txt", frames)
    truth = read_ground_truth(tmp_path / "gt.txt", 3)
    for original, track, det, gt in zip(frames, back, dets, truth.frames):
        assert np.allclose(track.boxes, original.boxes) and np.array_equal(track.ids, original.ids)
        assert np.allclose(track.confidences, original.confidences)
        assert np.allclose(det.boxes, original.boxes) and (det.ids == -1).all()
        assert np.allclose(gt.boxes, original.boxes) and np.array_equal(gt.ids, original.ids)
    info = SeqInfo("A", 3, (100, 50), 12.5)
    write_seqinfo(tmp_path / "seqinfo.ini", info)
    assert read_seqinfo(tmp_path / "seqinfo.ini") == info


def test_detections_partly_outside_are_clipped(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("1,-1,-4,-1,10,12,0.9\n1,-1,29,21,10,10,0.8\n")  # 1-based: (-5, -2) and (28, 20) in memory
    boxes = read_detections(path, 1, (WIDTH, HEIGHT))[0].boxes
    assert np.allclose(boxes, [[0, 0, 5, 10], [28, 20, 4, 4]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,-1,2,3,10\n", r"det\.txt, line 1: 5 columns"),
        ("1,-1,2,3,10,12,0.9\n\n1,-1,2,3,x,12,0.9\n", r"det\.txt, line 3: not a number"),
        ("1,-1,2,3,10,12,0.9\n9,-1,2,3,10,12,0.9\n", r"det\.txt, line 2: frame 9 is not in 1\.\.4"),
        ("1,-1,2,3,0,12,0.9\n", r"det\.txt, line 1: width and height must be positive"),
        ("1,-1,200,300,10,12,0.9\n", r"det\.txt, line 1: box 200,300,10,12 is entirely outside the 32x24 frame"),
        ("\n", r"det\.txt: no detections"),
    ],
)
def test_malformed_det_txt(tmp_path, text, message):
    root = write_mot_folder(tmp_path / "TINY-01", det_text=text)
    with pytest.raises(InputError, match=message):
        open_sequence(root)


def test_unreadable_inputs(tmp_path):
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    with pytest.raises(InputError, match=r"broken\.avi: OpenCV cannot read it as a video"):
        open_sequence(tmp_path / "broken.avi")
    with pytest.raises(InputError, match=r"missing: not found"):
        open_sequence(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty: no image files"):
        open_sequence(tmp_path / "empty")
    root = write_mot_folder(tmp_path / "TINY-01", det_text=None)
    (root / "img1" / "000004.png").unlink()
    with pytest.raises(InputError, match=r"000004\.png: missing \(1 of the 4 frames"):
        open_sequence(root)
