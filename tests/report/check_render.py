"""Renders stint's HTML report with headless Chromium (Debian's `chromium`) to a PNG and a
PDF, and checks what a person would see: the PNG is the page with its charts drawn (the
bars' colours are on it), the PDF prints the headings and the figures as text.

    python check_render.py REPORT.html OUT_DIR EXPECTED_TEXT...

Prints a JSON summary; exits non-zero on the first check that fails.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import unicodedata
import zlib

from pypdf import PdfReader

# The bar colours of the report's charts (stint-api report.rs): the long-lived keys' trend
# and the lifetimes' distribution.
TREND_RED = (0xB3, 0x26, 0x1E)
LIFETIME_BLUE = (0x2F, 0x6F, 0xBD)


def chromium(*args):
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", f"--user-data-dir={profile}", *args,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def png_pixels(path):
    """Width, height and the set of RGB colours of an 8-bit RGB(A) PNG, unfiltered."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    width, height, depth, colour, _, _, interlace = ihdr
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unexpected PNG format {ihdr}"
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(height):
        ftype = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        for x in range(0, stride, bpp):
            colours.add(tuple(line[x:x + 3]))
        prev = line
    return width, height, colours


def main():
    html, out, expected = sys.argv[1], sys.argv[2], sys.argv[3:]
    url = "file://" + os.path.abspath(html)
    png, pdf = os.path.join(out, "report.png"), os.path.join(out, "report.pdf")
    chromium("--screenshot=" + png, "--window-size=1200,1600", url)
    chromium("--print-to-pdf=" + pdf, "--no-pdf-header-footer", url)

    width, height, colours = png_pixels(png)
    assert (width, height) == (1200, 1600), (width, height)
    assert len(colours) > 20, f"a blank page: {len(colours)} colours"
    for name, rgb in (("trend", TREND_RED), ("lifetimes", LIFETIME_BLUE)):
        assert rgb in colours, f"the {name} chart's bars are not drawn"

    reader = PdfReader(pdf)
    pages = len(reader.pages)
    # NFKC undoes the ligatures (ﬁ, ﬀ) the PDF's fonts set.
    text = unicodedata.normalize("NFKC", " ".join(" ".join((p.extract_text() or "").split()) for p in reader.pages))
    assert 1 <= pages <= 12, f"{pages} pages"
    missing = [e for e in expected if e not in text]
    assert not missing, f"not in the PDF: {missing}\n{text}"
    box = reader.pages[0].mediabox
    print(json.dumps({"png": [width, height], "colours": len(colours), "pdf_pages": pages,
                      "page_points": [round(float(box.width)), round(float(box.height))]}))


if __name__ == "__main__":
    main()
