"""Script agent: the Luau that runs the lesson's mechanics, checked by a real parser."""

from __future__ import annotations

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.checks import check_scripts
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
from agents.schemas import ScriptBundle, ScriptInput

INSTRUCTIONS = (
    "Write the Roblox Luau scripts that run this lesson: a module with the lesson's "
    "settings, a server script with one checkpoint or mechanic per objective (named after "
    "the objective), and a client script for the HUD that honours every accessibility "
    "need. `inputs.objectives` are the objectives to use (derive them from the request when "
    "empty). Each script's `dependencies` name module scripts of this bundle. Every script "
    "must parse as Luau."
)
REPAIR = (
    "Some of these scripts do not parse as Luau. Fix the syntax errors listed in `feedback` "
    "(script name, line, column, message) and return the whole bundle again."
)
TABLES = ("roblox_scripts",)


def _parse(bundle: ScriptBundle) -> dict[str, LuauCheck]:
    return {script.name: check_luau(script.content) for script in bundle.scripts}


class ScriptAgent(AgentKind):
    """Writes the scripts; every one must parse, after at most one repair by the model."""

    agent_type = "script"
    input_schema = ScriptInput
    description = "Roblox Luau scripts (server, client, module) for the lesson's mechanics."
    uses_model = True

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        payload = payload_as(ctx, ScriptInput)
        match phase:
            case Phase.SITUATION:
                return self._situation(payload)
            case Phase.PROBLEM:
                return self._problem(payload)
            case Phase.ACTION:
                return self._action(ctx, payload)
            case Phase.RESULT:
                return self._result(ctx, payload)
            case Phase.CONTEXT:
                return self._context(ctx)

    @staticmethod
    def _inputs(payload: ScriptInput) -> dict[str, object]:
        return {"objectives": [o.model_dump(mode="json") for o in payload.objectives]}

    @staticmethod
    def _situation(payload: ScriptInput) -> PhaseOutcome:
        return situation(
            payload.request,
            payload.revision_notes,
            objectives=[o.title for o in payload.objectives] or payload.request.learning_objectives,
        )

    @staticmethod
    def _problem(payload: ScriptInput) -> PhaseOutcome:
        return problem(
            "the Luau scripts of the lesson",
            ScriptBundle,
            [
                "every script parses as Luau (tree-sitter-luau)",
                "one mechanic per objective, named after it",
                "dependencies name module scripts of the bundle",
                *(f"the HUD honours {need}" for need in payload.request.accessibility),
            ],
        )

    def _action(self, ctx: PhaseContext, payload: ScriptInput) -> PhaseOutcome:
        return ask_for(
            ctx,
            "script",
            ScriptBundle,
            payload,
            instructions=INSTRUCTIONS,
            what="the scripts",
            inputs=self._inputs(payload),
        )

    def _result(self, ctx: PhaseContext, payload: ScriptInput) -> PhaseOutcome:
        bundle = stored(ctx, Phase.ACTION, "artifact", ScriptBundle)

        repair = model_repair(
            ctx,
            "script_repair",
            ScriptBundle,
            payload.request,
            instructions=REPAIR,
            inputs={**self._inputs(payload), "scripts": bundle.model_dump(mode="json")},
            note="asking the model to repair scripts that do not parse",
        )
        bundle, checks, usage, repaired = parse_or_repair("script", bundle, _parse, repair)
        return result(
            "script",
            bundle,
            check_scripts(bundle.scripts, checks),
            tested=True,
            test_results=checks,
            tables=TABLES,
            repair=repaired,
            usage=usage,
        )

    @staticmethod
    def _context(ctx: PhaseContext) -> PhaseOutcome:
        bundle = stored(ctx, Phase.RESULT, "artifact", ScriptBundle)
        kinds = ", ".join(f"{s.name} ({s.script_type})" for s in bundle.scripts)
        return reflection(
            ctx,
            lessons=[f"scripts: {kinds}"],
            focus=[
                "RemoteEvents: does the server trust anything the client sends?",
                "are checkpoint names stable so progress survives a revision?",
                "test in Studio with the class's accessibility settings",
            ],
        )
