"""The offline model's world: a theme and terrain (with its Luau builder) from a request.

Everything here is derived from the request (topic, subject, grade, size,
objectives, accessibility) so the same request gives the same world, and user
text only ever reaches Luau through ``lua_string`` so the source always parses.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import Any

from agents.schemas import (
    EnvironmentRequest,
    FeatureKind,
    HeightMap,
    TerrainContext,
    TerrainFeature,
    TerrainMaterial,
    TerrainSize,
    TerrainSpec,
    default_terrain_size,
)


@dataclass(frozen=True)
class Theme:
    """What a topic looks like as a Roblox world."""

    environment_type: str
    terrain_type: str
    biome: str
    material: TerrainMaterial
    accent: TerrainMaterial
    profile: str
    features: tuple[FeatureKind, ...]


_THEMES: tuple[tuple[tuple[str, ...], Theme], ...] = (
    (
        ("volcan", "lava", "magma", "erupt", "tectonic"),
        Theme(
            "volcano_island",
            "volcanic_island",
            "volcanic",
            "Basalt",
            "CrackedLava",
            "peak",
            ("crater", "water", "path"),
        ),
    ),
    (
        (
            "ocean",
            "sea",
            "marine",
            "coral",
            "reef",
            "tide",
            "water cycle",
            "fish",
            "whale",
            "coast",
        ),
        Theme(
            "coastal_lab",
            "coastal_reef",
            "marine",
            "Sand",
            "Limestone",
            "basin",
            ("water", "hill", "path"),
        ),
    ),
    (
        ("desert", "egypt", "pyramid", "sahara", "dune", "oasis"),
        Theme(
            "desert_expedition",
            "desert_dunes",
            "desert",
            "Sand",
            "Sandstone",
            "dunes",
            ("plateau", "water", "path"),
        ),
    ),
    (
        ("arctic", "polar", "glacier", "ice", "antarctic", "penguin", "climate", "tundra"),
        Theme(
            "polar_station",
            "polar_ice",
            "polar",
            "Snow",
            "Glacier",
            "plateau",
            ("crater", "water", "hill"),
        ),
    ),
    (
        ("space", "planet", "moon", "solar", "star", "astronom", "mars", "orbit", "gravity"),
        Theme(
            "space_outpost",
            "lunar_surface",
            "lunar",
            "Slate",
            "Basalt",
            "craters",
            ("crater", "crater", "plateau"),
        ),
    ),
    (
        ("mountain", "erosion", "rock", "geolog", "earthquake", "mineral", "fossil", "cave"),
        Theme(
            "mountain_trail",
            "mountain_range",
            "alpine",
            "Rock",
            "Slate",
            "ridge",
            ("cave", "river", "path"),
        ),
    ),
    (
        (
            "forest",
            "ecosystem",
            "habitat",
            "plant",
            "tree",
            "photosynth",
            "food chain",
            "biolog",
            "animal",
            "insect",
            "cell",
            "life",
        ),
        Theme(
            "forest_field_station",
            "forest_valley",
            "temperate_forest",
            "LeafyGrass",
            "Mud",
            "valley",
            ("river", "hill", "path"),
        ),
    ),
    (
        (
            "rome",
            "roman",
            "greece",
            "greek",
            "castle",
            "medieval",
            "ancient",
            "civiliz",
            "history",
            "city",
            "empire",
        ),
        Theme(
            "ancient_city",
            "city_plateau",
            "urban",
            "Cobblestone",
            "Brick",
            "plateau",
            ("plateau", "path", "water"),
        ),
    ),
    (
        ("math", "geometr", "fraction", "algebra", "number", "measure", "angle", "area"),
        Theme(
            "geometry_park",
            "terraced_park",
            "parkland",
            "Grass",
            "Pavement",
            "terraces",
            ("plateau", "path", "hill"),
        ),
    ),
    (
        ("chemi", "atom", "molecule", "element", "reaction", "physic", "energy", "electric"),
        Theme(
            "science_campus",
            "flat_campus",
            "laboratory",
            "Concrete",
            "Pavement",
            "flat",
            ("plateau", "path", "water"),
        ),
    ),
    (
        ("farm", "soil", "agricult", "weather", "season", "crop"),
        Theme(
            "farm_fields",
            "farmland",
            "grassland",
            "Ground",
            "Grass",
            "rolling",
            ("hill", "river", "path"),
        ),
    ),
)
_DEFAULT_THEME = Theme(
    "discovery_meadow",
    "rolling_meadow",
    "temperate",
    "Grass",
    "Rock",
    "rolling",
    ("hill", "water", "path"),
)
_GRID: dict[TerrainSize, int] = {"small": 8, "medium": 12, "large": 16}
_FEATURE_MATERIAL = {"water": "Water", "river": "Water", "crater": "Air", "cave": "Air"}


def stable_int(*parts: object) -> int:
    """A process-independent hash (``hash()`` of str is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def theme_for(request: EnvironmentRequest) -> Theme:
    """Pick the world from the topic first, then from the subject."""
    for text in (request.topic.lower(), request.subject.lower()):
        for keywords, theme in _THEMES:
            if any(word in text for word in keywords):
                return theme
    return _DEFAULT_THEME


def lua_string(text: str) -> str:
    """A double-quoted Luau string literal holding ``text`` exactly."""
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    body = "".join(
        escapes.get(ch) or (f"\\{ord(ch):03d}" if ord(ch) < 32 or ord(ch) == 127 else ch)
        for ch in text
    )
    return f'"{body}"'


def slug(text: str, fallback: str) -> str:
    """An ASCII identifier for Luau and Roblox instance names."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    value = "_".join(words)[:40].strip("_")
    return value if value and value[0].isalpha() else fallback


def _craters(u: float, v: float) -> float:
    inside = math.hypot(u - 0.4, v) < 0.25 or math.hypot(u + 0.3, v + 0.3) < 0.2
    return 5.0 if inside else 20.0


_SHAPES: dict[str, Callable[[float, float], float]] = {
    "peak": lambda u, v: (
        120 * max(0.0, 1 - math.hypot(u, v) / 0.8) - (40 if math.hypot(u, v) < 0.15 else 0)
    ),
    "basin": lambda u, v: 10 + 50 * min(1.0, math.hypot(u, v)),
    "dunes": lambda u, v: 12 + 10 * math.sin(6 * u) * math.cos(4 * v),
    "plateau": lambda u, v: 40 if math.hypot(u, v) < 0.5 else 12,
    "craters": _craters,
    "ridge": lambda _u, v: 20 + 80 * max(0.0, 1 - abs(v) / 0.4),
    "valley": lambda u, _v: 15 + 60 * abs(u),
    "terraces": lambda u, _v: 8 * round((u + 1) * 3),
    "flat": lambda _u, _v: 8,
    "rolling": lambda u, v: 14 + 8 * math.sin(3 * u + 1) * math.sin(2 * v),
}
"""Height in studs of each terrain profile at (u, v) in [-1, 1]^2."""


def height_map(theme: Theme, size: TerrainSize, rng: Random) -> HeightMap:
    n, shape = _GRID[size], _SHAPES[theme.profile]
    rows = [
        [
            round(max(0.0, shape(2 * c / (n - 1) - 1, 2 * r / (n - 1) - 1) + rng.uniform(-2, 2)))
            for c in range(n)
        ]
        for r in range(n)
    ]
    return HeightMap(cell_size_studs=16, heights=rows)


def _features(theme: Theme, size: TerrainSize, rng: Random) -> list[TerrainFeature]:
    half = _GRID[size] * 16 // 2
    features = []
    for index, kind in enumerate(theme.features):
        angle = rng.uniform(0, 2 * math.pi)
        distance = (
            0 if kind in {"crater", "plateau"} and index == 0 else rng.randint(half // 4, half // 2)
        )
        features.append(
            TerrainFeature(
                kind=kind,
                label=f"{kind} {index + 1}",
                x=round(distance * math.cos(angle)),
                z=round(distance * math.sin(angle)),
                radius=rng.randint(8, max(9, half // 4)),
            )
        )
    return features


def _feature_luau(feature: TerrainFeature, accent: str) -> str:
    material = f"Enum.Material.{_FEATURE_MATERIAL.get(feature.kind, accent)}"
    x, z, r = feature.x, feature.z, feature.radius
    if feature.kind in {"water", "river"}:
        return (
            f"Terrain:FillRegion(Region3.new(Vector3.new({x - r}, 0, {z - r}), "
            f"Vector3.new({x + r}, 12, {z + r})):ExpandToGrid(4), 4, {material})"
        )
    if feature.kind in {"plateau", "path"}:
        height = 24 if feature.kind == "plateau" else 2
        return (
            f"Terrain:FillCylinder(CFrame.new({x}, {height / 2}, {z}), {height}, {r}, {material})"
        )
    return f"Terrain:FillBall(Vector3.new({x}, {r // 2}, {z}), {r}, {material})"


def generation_script(
    name: str, theme: Theme, heights: HeightMap, features: list[TerrainFeature]
) -> str:
    rows = ",\n".join("\t{" + ", ".join(map(str, row)) + "}" for row in heights.heights)
    feature_lines = "\n".join(_feature_luau(f, theme.accent) for f in features)
    return f"""--!strict
-- Builds the lesson terrain from a coarse height map, then shapes its features.
local Terrain = workspace.Terrain
local NAME: string = {lua_string(name)}
local CELL: number = {heights.cell_size_studs}
local MATERIAL = Enum.Material.{theme.material}
local HEIGHTS: {{{{number}}}} = {{
{rows},
}}

local originX = -#HEIGHTS[1] * CELL / 2
local originZ = -#HEIGHTS * CELL / 2
Terrain:Clear()
for row, line in HEIGHTS do
\tfor column, height in line do
\t\tlocal thickness = math.max(height, 4)
\t\tlocal x = originX + (column - 0.5) * CELL
\t\tlocal z = originZ + (row - 0.5) * CELL
\t\tlocal center = Vector3.new(x, thickness / 2, z)
\t\tTerrain:FillBlock(CFrame.new(center), Vector3.new(CELL, thickness, CELL), MATERIAL)
\tend
end
{feature_lines}
print(`Terrain ready: {{NAME}} ({{#HEIGHTS}}x{{#HEIGHTS[1]}} cells)`)
"""


def terrain_spec(request: EnvironmentRequest, inputs: dict[str, Any], rng: Random) -> TerrainSpec:
    theme = theme_for(request)
    size: TerrainSize = inputs.get("size") or default_terrain_size(request)
    heights = height_map(theme, size, rng)
    features = _features(theme, size, rng)
    name = f"{request.topic} {theme.terrain_type.replace('_', ' ')}"[:200]
    complexity = (
        1 + {"small": 1, "medium": 2, "large": 3}[size] + len(features) + request.grade_level // 4
    )
    return TerrainSpec(
        name=name,
        terrain_type=theme.terrain_type,
        material=theme.material,
        size=size,
        biome=theme.biome,
        features=features,
        elevation_data=heights,
        generation_script=generation_script(name, theme, heights, features),
        complexity_score=min(10, complexity),
        educational_context=TerrainContext(
            topic=request.topic,
            learning_focus=[o[:300] for o in request.learning_objectives][:10],
            notes=(
                f"A {theme.biome} {theme.terrain_type.replace('_', ' ')} of {theme.material} "
                f"so grade {request.grade_level} students can explore {request.topic} in place; "
                f"features: {', '.join(f.kind for f in features)}."
            ),
        ),
    )
