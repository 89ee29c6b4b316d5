"""Video for the tracker attack: sequences and their MOTChallenge files, detections, tracker adapters, tracking metrics."""
