"""Terrain agent: the lesson's Roblox terrain and the Luau that builds it."""

from __future__ import annotations

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.checks import check_terrain
from agents.luau import LuauCheck, check_luau
from agents.phases import (
    ask_for,
    model_repair,
    parse_or_repair,
    payload_as,
    problem,
    reflection,
    result,
    situation,
    stored,
)
from agents.schemas import TerrainInput, TerrainSize, TerrainSpec, default_terrain_size

INSTRUCTIONS = (
    "Design the terrain of the lesson's Roblox world in `inputs.size`. Choose the biome and "
    "a terrain Enum.Material that fit the topic and subject, a coarse height map in studs, "
    "and features that support the objectives. `generation_script` is Luau that builds it "
    "with workspace.Terrain APIs (FillBlock, FillBall, FillRegion, FillCylinder) and must "
    "parse. Explain in `educational_context` how the terrain teaches the topic."
)
REPAIR = (
    "The generation_script of this terrain does not parse as Luau. Fix the syntax errors "
    "listed in `feedback` and return the whole terrain again with a script that parses."
)
TABLES = ("roblox_terrain",)


def _parse(terrain: TerrainSpec) -> dict[str, LuauCheck]:
    return {"generation_script": check_luau(terrain.generation_script)}


class TerrainAgent(AgentKind):
    """Designs the terrain; its generation script must parse before it is stored."""

    agent_type = "terrain"
    input_schema = TerrainInput
    description = "Roblox terrain (biome, material, height map, features) with its Luau builder."
    uses_model = True

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        payload = payload_as(ctx, TerrainInput)
        match phase:
            case Phase.SITUATION:
                return situation(payload.request, payload.revision_notes, size=self._size(payload))
            case Phase.PROBLEM:
                return self._problem(payload)
            case Phase.ACTION:
                return self._action(ctx, payload)
            case Phase.RESULT:
                return self._result(ctx, payload)
            case Phase.CONTEXT:
                return self._context(ctx, payload)

    @staticmethod
    def _size(payload: TerrainInput) -> TerrainSize:
        return payload.size or default_terrain_size(payload.request)

    def _inputs(self, payload: TerrainInput, **extra: object) -> dict[str, object]:
        return {"size": self._size(payload), **extra}

    def _problem(self, payload: TerrainInput) -> PhaseOutcome:
        return problem(
            "terrain for the lesson and the Luau that builds it",
            TerrainSpec,
            [
                f"{self._size(payload)} terrain whose biome and material fit "
                f"{payload.request.topic!r}",
                "generation_script parses as Luau and uses workspace.Terrain fill APIs",
                "features and educational_context relate to the objectives",
            ],
        )

    def _action(self, ctx: PhaseContext, payload: TerrainInput) -> PhaseOutcome:
        return ask_for(
            ctx,
            "terrain",
            TerrainSpec,
            payload,
            instructions=INSTRUCTIONS,
            what="the terrain",
            inputs=self._inputs(payload),
        )

    def _result(self, ctx: PhaseContext, payload: TerrainInput) -> PhaseOutcome:
        terrain = stored(ctx, Phase.ACTION, "artifact", TerrainSpec)

        repair = model_repair(
            ctx,
            "terrain_repair",
            TerrainSpec,
            payload.request,
            instructions=REPAIR,
            inputs=self._inputs(payload, terrain=terrain.model_dump(mode="json")),
            note="asking the model to repair the terrain script",
        )
        terrain, checks, usage, repaired = parse_or_repair("terrain", terrain, _parse, repair)
        return result(
            "terrain",
            terrain,
            check_terrain(terrain, checks["generation_script"]),
            tested=True,
            test_results=checks,
            tables=TABLES,
            repair=repaired,
            usage=usage,
        )

    def _context(self, ctx: PhaseContext, payload: TerrainInput) -> PhaseOutcome:
        terrain = stored(ctx, Phase.RESULT, "artifact", TerrainSpec)
        return reflection(
            ctx,
            lessons=[
                f"{terrain.biome} biome of {terrain.material}, complexity "
                f"{terrain.complexity_score}"
            ],
            focus=[
                f"does a {terrain.biome} world fit {payload.request.topic!r}?",
                f"can {payload.request.max_students} students move around in {terrain.size}?",
                "run the generation script in Studio once before class",
            ],
        )
