#!/usr/bin/env python3
"""Generate render/data/world-110m.tsv: projected SVG outlines of the world's countries.

Run once by a maintainer (the output is committed; builds and tests never run this script):

    cd /tmp && npm pack world-atlas@2.0.2 i18n-iso-countries@7.14.0
    tar xzf world-atlas-2.0.2.tgz --one-top-level && tar xzf i18n-iso-countries-7.14.0.tgz --one-top-level
    python3 scripts/world-map.py --world-atlas /tmp/world-atlas-2.0.2/package \
        --iso-countries /tmp/i18n-iso-countries-7.14.0/package > render/data/world-110m.tsv

Sources:
- npm `world-atlas` 2.0.2 (ISC licence, Mike Bostock): Natural Earth 4.1.0 admin-0 countries as
  TopoJSON. Natural Earth itself is public domain. Shapes come from `countries-110m.json`; the
  countries that have no shape at that scale (Singapore, Hong Kong, Malta, Bahrain, ...) are
  drawn as dots at the centroid of their shape in `countries-50m.json`.
- npm `i18n-iso-countries` 7.14.0 (MIT licence): ISO 3166-1 numeric -> alpha-2 codes
  (`codes.json`) and English names (`langs/en.json`).

Transformation: TopoJSON arcs are decoded (delta-encoded, quantized), rings assembled, rings that
cross the antimeridian unwrapped and clipped at +-180 degrees, Antarctica left out (no mail comes
from there and it would take a fifth of the height), then projected with Equal Earth (Savric,
Patterson, Jenny 2019; equal-area, so the shaded area matches the ground area), scaled to the
width below, rounded to 0.1 px, and written as SVG path data with relative coordinates. Points
that round onto the previous point are dropped.

Python 3 standard library only.
"""

import argparse
import json
import math
import os
import sys

WIDTH = 960.0
# Latitudes kept: Antarctica is dropped, so the map ends a little south of Cape Horn.
SOUTH_LIMIT = -58.0
NORTH_LIMIT = 84.0

# Equal Earth constants.
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
M = math.sqrt(3) / 2

# Shapes without an ISO numeric id in world-atlas, by their Natural Earth name.
UNCODED = {"N. Cyprus": "CY", "Somaliland": "SO", "Kosovo": "XK"}
# Short English names where the ISO table's first form is long or formal.
NAMES = {
    "US": "United States", "RU": "Russia", "IR": "Iran", "TZ": "Tanzania", "SY": "Syria",
    "LA": "Laos", "MD": "Moldova", "TW": "Taiwan", "MK": "North Macedonia", "PS": "Palestine",
    "KR": "South Korea", "KP": "North Korea", "CZ": "Czechia", "FK": "Falkland Islands",
    "CI": "Côte d'Ivoire", "BO": "Bolivia", "VE": "Venezuela", "VN": "Vietnam", "XK": "Kosovo",
    "GB": "United Kingdom", "CD": "DR Congo", "CG": "Congo", "BN": "Brunei",
    "VA": "Vatican City", "FM": "Micronesia",
}


def equal_earth(lon, lat):
    lam, phi = math.radians(lon), math.radians(lat)
    theta = math.asin(M * math.sin(phi))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    x = lam * math.cos(theta) / (M * (A1 + 3 * A2 * t2 + t6 * (7 * A3 + 9 * A4 * t2)))
    y = theta * (A1 + A2 * t2 + t6 * (A3 + A4 * t2))
    return x, y


X_MAX, _ = equal_earth(180.0, 0.0)
_, Y_NORTH = equal_earth(0.0, NORTH_LIMIT)
_, Y_SOUTH = equal_earth(0.0, SOUTH_LIMIT)
SCALE = WIDTH / (2 * X_MAX)
HEIGHT = round((Y_NORTH - Y_SOUTH) * SCALE, 1)


def to_px(lon, lat):
    x, y = equal_earth(lon, lat)
    return (x + X_MAX) * SCALE, (Y_NORTH - y) * SCALE


def decode_arcs(topology):
    sx, sy = topology["transform"]["scale"]
    tx, ty = topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring_points(arcs, indices):
    ring = []
    for index in indices:
        points = arcs[index] if index >= 0 else arcs[~index][::-1]
        ring.extend(points if not ring else points[1:])
    return ring


def polygons(geometry):
    if geometry["type"] == "Polygon":
        return [geometry["arcs"]]
    if geometry["type"] == "MultiPolygon":
        return geometry["arcs"]
    return []


def unwrap(ring):
    """Make longitudes continuous (no jump over 180 degrees between neighbours)."""
    out = [ring[0]]
    offset = 0.0
    for (lon0, _), (lon1, lat1) in zip(ring, ring[1:]):
        if lon1 - lon0 > 180:
            offset -= 360
        elif lon0 - lon1 > 180:
            offset += 360
        out.append((lon1 + offset, lat1))
    return out


def clip(ring, inside, cross):
    """Sutherland-Hodgman against one half-plane."""
    out = []
    for i, current in enumerate(ring):
        previous = ring[i - 1]
        if inside(current):
            if not inside(previous):
                out.append(cross(previous, current))
            out.append(current)
        elif inside(previous):
            out.append(cross(previous, current))
    return out


def at_lon(limit):
    def cross(a, b):
        t = (limit - a[0]) / (b[0] - a[0])
        return (limit, a[1] + t * (b[1] - a[1]))
    return cross


def world_pieces(ring):
    """The parts of a ring inside -180..180, with antimeridian crossings cut and wrapped."""
    ring = unwrap(ring)
    pieces = []
    for shift in (0.0, 360.0, -360.0):
        moved = [(lon + shift, lat) for lon, lat in ring]
        moved = clip(moved, lambda p: p[0] >= -180, at_lon(-180.0))
        moved = clip(moved, lambda p: p[0] <= 180, at_lon(180.0)) if moved else []
        if len(moved) >= 3:
            pieces.append(moved)
    return pieces


def fmt(value):
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    if text == "-0":
        text = "0"
    return text


def path_data(rings):
    parts = []
    for ring in rings:
        pixels = [(round(x * 10), round(y * 10)) for x, y in (to_px(lon, lat) for lon, lat in ring)]
        kept = [pixels[0]]
        for point in pixels[1:]:
            if point != kept[-1]:
                kept.append(point)
        if len(kept) > 1 and kept[-1] == kept[0]:
            kept.pop()
        if len(kept) < 3:
            continue
        x0, y0 = kept[0]
        commands = [f"M{fmt(x0 / 10)} {fmt(y0 / 10)}l"]
        steps = []
        for (ax, ay), (bx, by) in zip(kept, kept[1:]):
            steps.append(f"{fmt((bx - ax) / 10)} {fmt((by - ay) / 10)}")
        commands.append(" ".join(steps))
        commands.append("z")
        parts.append("".join(commands))
    return "".join(parts)


def centroid(rings):
    """Area-weighted centroid in pixels of the largest ring."""
    best = None
    for ring in rings:
        points = [to_px(lon, lat) for lon, lat in ring]
        area = cx = cy = 0.0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1]):
            cross = x0 * y1 - x1 * y0
            area += cross
            cx += (x0 + x1) * cross
            cy += (y0 + y1) * cross
        if area == 0:
            cx = sum(x for x, _ in points) / len(points)
            cy = sum(y for _, y in points) / len(points)
        else:
            cx /= 3 * area
            cy /= 3 * area
        if best is None or abs(area) > best[0]:
            best = (abs(area), cx, cy)
    return best[1], best[2]


def country_rings(topology, geometry):
    arcs = topology["_decoded"]
    rings = []
    for polygon in polygons(geometry):
        for indices in polygon:
            points = ring_points(arcs, indices)
            for piece in world_pieces(points):
                rings.append([(lon, max(min(lat, NORTH_LIMIT), SOUTH_LIMIT)) for lon, lat in piece])
    return rings


def load(path):
    with open(path, encoding="utf-8") as handle:
        topology = json.load(handle)
    topology["_decoded"] = decode_arcs(topology)
    return topology


def alpha2_of(geometry, numeric_to_alpha2):
    numeric = geometry.get("id")
    if numeric is None:
        return UNCODED.get(geometry["properties"]["name"])
    return numeric_to_alpha2.get(numeric)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world-atlas", required=True, help="unpacked npm world-atlas 2.0.2 (package/)")
    parser.add_argument("--iso-countries", required=True, help="unpacked npm i18n-iso-countries 7.14.0 (package/)")
    args = parser.parse_args()

    with open(os.path.join(args.iso_countries, "codes.json"), encoding="utf-8") as handle:
        numeric_to_alpha2 = {numeric: alpha2 for alpha2, _, numeric, *_ in json.load(handle)}
    with open(os.path.join(args.iso_countries, "langs", "en.json"), encoding="utf-8") as handle:
        english = json.load(handle)["countries"]

    def name_of(code):
        if code in NAMES:
            return NAMES[code]
        name = english[code]
        return name[0] if isinstance(name, list) else name

    small = load(os.path.join(args.world_atlas, "countries-110m.json"))
    medium = load(os.path.join(args.world_atlas, "countries-50m.json"))

    shapes = {}
    for geometry in small["objects"]["countries"]["geometries"]:
        code = alpha2_of(geometry, numeric_to_alpha2)
        if code is None:
            sys.exit(f"world-map.py: no ISO alpha-2 code for {geometry.get('id')} {geometry['properties']['name']}")
        if code == "AQ":
            continue
        shapes.setdefault(code, []).extend(country_rings(small, geometry))

    dots = {}
    for geometry in medium["objects"]["countries"]["geometries"]:
        code = alpha2_of(geometry, numeric_to_alpha2)
        if code is None or code in shapes or code in dots or code == "AQ":
            continue
        rings = country_rings(medium, geometry)
        if rings:
            dots[code] = centroid(rings)

    out = sys.stdout
    out.write("# World map for dmarcpipe's HTML report, generated by scripts/world-map.py (do not edit).\n")
    out.write("# Shapes: Natural Earth 4.1.0 admin-0 countries 1:110m (public domain, naturalearthdata.com),\n")
    out.write("#   via npm world-atlas 2.0.2 countries-110m.json (ISC licence, Copyright 2013-2019 Michael Bostock,\n")
    out.write("#   https://registry.npmjs.org/world-atlas/-/world-atlas-2.0.2.tgz); dots: centroids of the\n")
    out.write("#   countries-50m.json shapes of countries without a 1:110m shape.\n")
    out.write("# Codes and names: npm i18n-iso-countries 7.14.0 (MIT licence, Copyright 2016 widdix GmbH,\n")
    out.write("#   https://registry.npmjs.org/i18n-iso-countries/-/i18n-iso-countries-7.14.0.tgz).\n")
    out.write("# Transformation: TopoJSON arcs decoded; antimeridian crossings cut at +-180; Antarctica left out;\n")
    out.write(f"#   latitudes {SOUTH_LIMIT:g}..{NORTH_LIMIT:g}; Equal Earth projection scaled to {WIDTH:g} px wide;\n")
    out.write("#   rounded to 0.1 px; SVG path data with relative steps.\n")
    out.write("# Lines: size<TAB>width<TAB>height | shape<TAB>alpha-2<TAB>name<TAB>path | dot<TAB>alpha-2<TAB>name<TAB>x y\n")
    out.write(f"size\t{fmt(WIDTH)}\t{fmt(HEIGHT)}\n")
    for code in sorted(shapes):
        out.write(f"shape\t{code}\t{name_of(code)}\t{path_data(shapes[code])}\n")
    for code in sorted(dots):
        x, y = dots[code]
        out.write(f"dot\t{code}\t{name_of(code)}\t{fmt(x)} {fmt(y)}\n")


if __name__ == "__main__":
    main()
