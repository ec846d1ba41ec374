"""Uses the Python client generated from the service's own /openapi.json
(openapi-python-client) as a newcomer would: uploads by form with sizes (fields after the
file, as the generated form sends them), by base64 (the JSON envelope), by the file's bytes,
and by URL; waits; fetches a variant's bytes; decodes the record's placeholders with the
reference implementations (Evan Wallace's ThumbHash, the npm package, run by Node.js; and
PyPI's blurhash, Wolt's algorithm) and compares them with the picture; lists; deletes.
Every step checks what it got.

Usage: check.py BASE_URL API_KEY FIXTURES_DIR SOURCE_BASE_URL NODE_PREFIX
(scripts/client generates the client, puts it on the path, installs the npm package under
NODE_PREFIX, and starts the service and a file server for the URL upload.)
"""

import base64
import io
import json
import pathlib
import subprocess
import sys

import blurhash
from PIL import Image
from thumbnailify_client import AuthenticatedClient
from thumbnailify_client.api.images import (
    delete_record,
    get_record,
    get_thumbnail,
    get_variant,
    list_records,
    upload,
)
from thumbnailify_client.models import (
    DataEnvelope,
    DataEnvelopeMediaType,
    Record,
    State,
    UploadForm,
    UploadItems,
    UrlEnvelope,
)
from thumbnailify_client.types import File

base_url, key, fixtures, sources, node_prefix = sys.argv[1:6]
fixtures = pathlib.Path(fixtures)
client = AuthenticatedClient(base_url=base_url, token=key, timeout=60)


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


def accepted(answer, what):
    if answer.status_code != 202:
        sys.exit(f"FAILED: {what}: {answer.status_code} {answer.content[:500]!r}")
    print(f"ok: {what}: 202")
    return answer.parsed


def final(media_id):
    record = get_record.sync(media_id, client=client, wait=30)
    check(isinstance(record, Record), f"{media_id} read back")
    check(record.state == State.COMPLETED, f"{media_id} completed ({record.state}: {record.message})")
    return record


def size_of(payload):
    return Image.open(io.BytesIO(payload)).size


# A form: the generated UploadForm sends the file first, then its fields.
jpeg = (fixtures / "jpeg-baseline.jpg").read_bytes()
form = UploadForm(
    image=[File(payload=io.BytesIO(jpeg), file_name="cat.jpg", mime_type="image/jpeg")],
    sizes="96x64,32x",
    enlarge=False,
    lossless=False,
)
items = accepted(upload.sync_detailed(client=client, body=form), "form upload")
check(isinstance(items, UploadItems) and len(items.items) == 1, "the form's answer lists its file")
by_form = final(items.media_id)
names = [thumbnail.name for thumbnail in by_form.thumbnails]
check(names == ["96x64", "32x"], f"the form's fields after the file applied ({names})")

# Base64, in the JSON envelope.
png = (fixtures / "png-rgba.png").read_bytes()
envelope = DataEnvelope(
    data=base64.b64encode(png).decode(),
    media_type=DataEnvelopeMediaType.IMAGEPNG,
    name="rgba.png",
    sizes="64x64",
)
record = accepted(upload.sync_detailed(client=client, body=envelope), "base64 upload")
check(isinstance(record, Record) and record.name == "rgba.png", "the base64 upload's record")
by_base64 = final(record.media_id)

# The file's own bytes.
record = accepted(
    upload.sync_detailed(client=client, body=File(payload=io.BytesIO(jpeg)), sizes="50x50"),
    "bytes upload",
)
media_type = getattr(record.media_type, "value", record.media_type)
check(media_type == "image/jpeg", f"the bytes' type read from them ({media_type})")
by_bytes = final(record.media_id)

# By URL, from a file server on this machine (allowed by sources.allowed_hosts).
record = accepted(
    upload.sync_detailed(client=client, body=UrlEnvelope(url=f"{sources}/png-rgb.png", sizes="40x40")),
    "URL upload",
)
by_url = final(record.media_id)
check(by_url.width > 0, f"the fetched image's facts ({by_url.width}x{by_url.height})")

# A variant's bytes, and the first thumbnail's: what the generated calls return by default.
variant = get_variant.sync_detailed(by_form.media_id, "96x64", client=client)
check(variant.status_code == 200, f"the variant answers 200 ({variant.status_code})")
payload = variant.parsed.payload.read()
check(size_of(payload) == (96, 60), f"the variant's bytes are its picture ({size_of(payload)})")
first = get_thumbnail.sync_detailed(by_base64.media_id, client=client)
check(first.status_code == 200 and size_of(first.parsed.payload.read()) == (64, 36),
      "the first thumbnail's bytes")
# Its base64, when asked for by name.
encoded = get_thumbnail.sync_detailed(by_base64.media_id, client=client, accept="*/*")
check(size_of(base64.b64decode(encoded.content)) == (64, 36), "the first thumbnail in base64")

# The placeholders, decoded by the reference implementations, look like the picture: their
# previews, and the photograph, averaged over a 4x3 grid (what a blurred preview keeps) are
# within 20 levels of each other; the dominant colour is one of the picture's colours.
placeholder = by_form.placeholder
picture = Image.open(io.BytesIO(jpeg)).convert("RGB")
DECODE = """
const thumbhash = require('thumbhash');
const { w, h, rgba } = thumbhash.thumbHashToRGBA(new Uint8Array(Buffer.from(process.argv[1], 'base64')));
process.stdout.write(JSON.stringify({ w, h, rgba: Array.from(rgba) }));
"""
decoded = json.loads(subprocess.run(
    ["node", "-e", DECODE, placeholder.thumbhash], capture_output=True, text=True, check=True,
    cwd=node_prefix,
).stdout)
width, height = decoded["w"], decoded["h"]
preview = Image.frombytes("RGBA", (width, height), bytes(decoded["rgba"])).convert("RGB")
# ThumbHash stores the aspect ratio coarsely (its component counts): within 15 %.
aspect = picture.width / picture.height
check(abs(width / height - aspect) / aspect < 0.15,
      f"the ThumbHash keeps the aspect ratio ({width}x{height} for {picture.width}x{picture.height})")


def mean_difference(a, b):
    a, b = a.resize((4, 3), Image.BOX).tobytes(), b.resize((4, 3), Image.BOX).tobytes()
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)


difference = mean_difference(preview, picture)
check(difference < 20, f"the ThumbHash preview is the picture ({difference:.1f} levels off)")
rows = blurhash.decode(placeholder.blurhash, 32, 20)
blurred = Image.frombytes("RGB", (32, 20), bytes(int(v) for row in rows for px in row for v in px[:3]))
difference = mean_difference(blurred, picture)
check(difference < 20, f"the BlurHash preview is the picture ({difference:.1f} levels off)")
colour = tuple(int(placeholder.dominant_color[i:i + 2], 16) for i in (1, 3, 5))
small = picture.resize((64, 40), Image.BOX).tobytes()
pixels = [small[i:i + 3] for i in range(0, len(small), 3)]
nearest = min(sum(abs(a - b) for a, b in zip(colour, p)) for p in pixels)
check(nearest < 30, f"the dominant colour {placeholder.dominant_color} is in the picture")

# The list holds them; delete them all, and they are gone.
page = list_records.sync(client=client, limit=100)
listed = {item.media_id for item in page.items}
ids = [by_form.media_id, by_base64.media_id, by_bytes.media_id, by_url.media_id]
check(set(ids) <= listed, "the list holds every upload")
for media_id in ids:
    check(delete_record.sync_detailed(media_id, client=client).status_code == 204, f"{media_id} deleted")
check(get_record.sync_detailed(by_form.media_id, client=client).status_code == 404, "a deleted record is gone")
print("the generated client works")
