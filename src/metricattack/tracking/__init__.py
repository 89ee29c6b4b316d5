"""The tracker attack: re-ID features inside a multi-object tracker, attacked online frame by frame by
perturbing only the pixels inside detection boxes, and the tracking metrics before and after."""
