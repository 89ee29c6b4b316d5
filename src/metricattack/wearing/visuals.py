"""What a wearing run shows: each print as a PNG, a contact sheet of the wearer with and without it per
camera, and a report.html section with the summary, the prints and the sheets (all written atomically)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from metricattack.system.atomic import atomic_write, atomic_write_text
from metricattack.wearing.results import cell, shown_columns

PATTERN_SCALE = 8  # a print's texel as an 8x8 block in its PNG


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, h, w) in [0, 1] as an 8-bit RGB image."""
    return Image.fromarray(np.uint8(np.clip(image.permute(1, 2, 0).numpy() * 255 + 0.5, 0, 255)))


def save_png(image: Image.Image, path: Path) -> Path:
    """``image`` as a PNG at ``path``, written atomically."""
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def save_pattern(texture: torch.Tensor, path: Path) -> Path:
    """The print (3, h, w) as a PNG, each texel an 8x8 block."""
    image = to_pil(texture)
    return save_png(image.resize((image.width * PATTERN_SCALE, image.height * PATTERN_SCALE), Image.NEAREST), path)


def read_pattern(path: Path) -> np.ndarray:
    """A print's PNG back as (h, w, 3) in [0, 1], at its texel size (``save_pattern``'s blocks undone when present)."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    blocks = pixels[::PATTERN_SCALE, ::PATTERN_SCALE]
    if pixels.shape[0] % PATTERN_SCALE == 0 and pixels.shape[1] % PATTERN_SCALE == 0 and np.array_equal(
        np.repeat(np.repeat(blocks, PATTERN_SCALE, 0), PATTERN_SCALE, 1), pixels
    ):
        return blocks
    return pixels


def contact_sheet(rows: dict[str, torch.Tensor], cameras: list[int], path: Path) -> Path:
    """A PNG grid: one row per print (label -> images (C, 3, H, W), one per camera), one column per camera."""
    first = next(iter(rows.values()))
    height, width = first.shape[-2:]
    pad, label_w, header_h = 4, 56, 16
    sheet = Image.new("RGB", (label_w + len(cameras) * (width + pad) + pad, header_h + len(rows) * (height + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for column, camera in enumerate(cameras):
        draw.text((label_w + pad + column * (width + pad) + width // 2 - 6, 2), f"c{camera}", fill="black")
    for row, (label, images) in enumerate(rows.items()):
        y = header_h + pad + row * (height + pad)
        draw.text((4, y + height // 2 - 5), label, fill="black")
        for column, image in enumerate(images):
            sheet.paste(to_pil(image), (label_w + pad + column * (width + pad), y))
    return save_png(sheet, path)


def write_report(run_dir: Path, record: dict) -> Path:
    """report.html: the summary, the table, and per wearer the print, the random print and the contact sheet."""
    setting, rows = record["setting"], record["results"]
    summary = "".join(f"<tr><td>{html.escape(key)}</td><td>{cell(key, value)}</td></tr>"
                      for key, value in record["summary"].items() if value is not None)  # fmt: skip
    columns = shown_columns(rows)
    table = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>" + "".join(
        "<tr>" + "".join(f"<td>{cell(c, row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    wearers = "".join(
        f"<h3>pid {row['pid']}{'' if row.get('target') is None else ' as ' + str(row['target'])}</h3>"
        f"<p><img src='pattern_{row['pid']}.png' alt='optimised print'> <img src='random_{row['pid']}.png' alt='random print'></p>"
        f"<p><img src='contact_{row['pid']}.png' alt='contact sheet'></p>"
        for row in rows
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Wearable pattern</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:2px 8px;text-align:right}} img{{image-rendering:pixelated}}</style>
</head><body>
<section id="wearing"><h2>Wearable pattern: {html.escape(setting['goal'])} on the {html.escape(setting['area'])}</h2>
<p>Optimised on cameras {setting['train_cameras']} ({setting['steps']} steps of {setting['renders']} renders), scored on
re-rendered images in the held-out cameras {setting['test_cameras']}; fractions in %. Model {html.escape(str(record['model']))},
transfer to {html.escape(str(record.get('transfer_model')))}. Command: <code>{html.escape(record.get('command', ''))}</code></p>
<table>{summary}</table>
<h3>Wearers</h3><table>{table}</table>
<p>Each wearer: the optimised print, the random print with its colours and smoothness, and the contact sheet (rows:
his own top, the print, the random print; columns: cameras).</p>
{wearers}</section></body></html>
"""
    return atomic_write_text(Path(run_dir) / "report.html", page)

