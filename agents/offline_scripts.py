"""The offline model's Luau scripts: lesson settings, objective checkpoints and a HUD.

Mechanics are named after the objectives, and every user-written text reaches
Luau only through ``lua_string``, so the scripts parse whatever the request says.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.offline_world import lua_string, slug
from agents.schemas import BloomLevel, EnvironmentRequest, ScriptBundle, ScriptSpec

MECHANIC_BY_BLOOM: dict[BloomLevel, str] = {
    "remember": "CollectClues",
    "understand": "ExplainStation",
    "apply": "BuildChallenge",
    "analyze": "SortEvidence",
    "evaluate": "DebateVote",
    "create": "DesignStudio",
}
ID_MAX = 40
"""Characters of an objective's id: ``slug``'s length, kept when a clash adds a suffix."""


def objective_ids(titles: Sequence[str]) -> list[str]:
    """One id per objective, each different: ``ObjectiveTracker`` keys progress by id.

    Two objectives with one id share one progress entry, so the lesson never
    counts every objective done.  An objective keeps its ``slug`` unless an
    earlier one has it; a later one takes the first free ``_N`` (from its own
    position on), free of every objective's own slug, so the ids of objectives
    that do not clash never change.
    """
    natural = [slug(title, f"objective_{index + 1}") for index, title in enumerate(titles)]
    taken = set(natural)
    ids: list[str] = []
    for index, ident in enumerate(natural):
        if ident in ids:
            ident = _free_id(ident, index + 1, taken)
            taken.add(ident)
        ids.append(ident)
    return ids


def _free_id(base: str, number: int, taken: set[str]) -> str:
    """``base_N`` for the first ``N`` from ``number`` not in ``taken``, cut to ``ID_MAX``."""
    while True:
        suffix = f"_{number}"
        candidate = base[: ID_MAX - len(suffix)].rstrip("_") + suffix
        if candidate not in taken:
            return candidate
        number += 1


def _config_module(request: EnvironmentRequest, objectives: list[dict[str, str]]) -> str:
    needs = set(request.accessibility)
    entries = "\n".join(
        f"\t{{id = {lua_string(o['id'])}, title = {lua_string(o['title'])}, "
        f"mechanic = {lua_string(o['mechanic'])}}},"
        for o in objectives
    )

    def flag(need: str) -> str:
        return "true" if need in needs else "false"

    return f"""--!strict
export type Objective = {{id: string, title: string, mechanic: string}}

local LessonConfig = {{}}
LessonConfig.title = {lua_string(request.topic)}
LessonConfig.subject = {lua_string(request.subject)}
LessonConfig.gradeLevel = {request.grade_level}
LessonConfig.language = {lua_string(request.language)}
LessonConfig.durationMinutes = {request.duration_minutes}
LessonConfig.maxStudents = {request.max_students}
LessonConfig.adaptive = {"true" if request.adaptive else "false"}
LessonConfig.accessibility = {{
\tcaptions = {flag("captions")},
\tscreenReaderHints = {flag("screen_reader")},
\tcolorBlindPalette = {flag("color_blind")},
\treducedMotion = {flag("reduced_motion")},
\thighContrast = {flag("high_contrast")},
\tlargeText = {flag("large_text")},
}}
LessonConfig.objectives = {{
{entries}
}} :: {{Objective}}

return LessonConfig
"""


_TRACKER = """--!strict
-- One checkpoint per objective; each is named after the objective it assesses.
local Players = game:GetService("Players")
local ReplicatedStorage = game:GetService("ReplicatedStorage")
local LessonConfig = require(ReplicatedStorage:WaitForChild("LessonConfig"))

type Progress = {[string]: boolean}

local progressEvent = Instance.new("RemoteEvent")
progressEvent.Name = "LessonProgress"
progressEvent.Parent = ReplicatedStorage

local progressByPlayer: {[Player]: Progress} = {}

local function completeObjective(player: Player, objectiveId: string)
\tlocal progress = progressByPlayer[player]
\tif progress == nil or progress[objectiveId] then
\t\treturn
\tend
\tprogress[objectiveId] = true
\tlocal done = 0
\tfor _, finished in progress do
\t\tif finished then
\t\t\tdone += 1
\t\tend
\tend
\tprogressEvent:FireClient(player, objectiveId, done, #LessonConfig.objectives)
end

Players.PlayerAdded:Connect(function(player: Player)
\tprogressByPlayer[player] = {}
end)
Players.PlayerRemoving:Connect(function(player: Player)
\tprogressByPlayer[player] = nil
end)

for index, objective in LessonConfig.objectives do
\tlocal checkpoint = Instance.new("Part")
\tcheckpoint.Name = `{objective.mechanic}_{objective.id}`
\tcheckpoint.Anchored = true
\tcheckpoint.CanCollide = false
\tcheckpoint.Size = Vector3.new(8, 1, 8)
\tcheckpoint.Position = Vector3.new((index - 1) * 32 - 48, 30, 0)
\tcheckpoint.Parent = workspace
\tcheckpoint.Touched:Connect(function(hit: BasePart)
\t\tlocal player = Players:GetPlayerFromCharacter(hit.Parent)
\t\tif player then
\t\t\tcompleteObjective(player, objective.id)
\t\tend
\tend)
end
"""

_HUD = """--!strict
-- Shows progress; honours captions, contrast, text size, palette and motion settings.
local Players = game:GetService("Players")
local ReplicatedStorage = game:GetService("ReplicatedStorage")
local TweenService = game:GetService("TweenService")
local LessonConfig = require(ReplicatedStorage:WaitForChild("LessonConfig"))

local access = LessonConfig.accessibility
local DONE_COLOR = if access.colorBlindPalette
	then Color3.fromRGB(0, 114, 178)
	else Color3.fromRGB(0, 158, 115)
local titles: {[string]: string} = {}
for _, objective in LessonConfig.objectives do
\ttitles[objective.id] = objective.title
end

local gui = Instance.new("ScreenGui")
gui.Name = "LessonHUD"
gui.ResetOnSpawn = false
local label = Instance.new("TextLabel")
label.Size = UDim2.new(0.5, 0, 0, if access.largeText then 72 else 44)
label.Position = UDim2.new(0.25, 0, 0, 12)
label.TextScaled = true
local PANEL_COLOR = if access.highContrast then Color3.new(0, 0, 0) else Color3.fromRGB(24, 48, 72)
label.BackgroundColor3 = PANEL_COLOR
label.TextColor3 = Color3.new(1, 1, 1)
label.Text = LessonConfig.title
label.Parent = gui
gui.Parent = Players.LocalPlayer:WaitForChild("PlayerGui")

local progressEvent = ReplicatedStorage:WaitForChild("LessonProgress") :: RemoteEvent
progressEvent.OnClientEvent:Connect(function(objectiveId: string, done: number, total: number)
\tlocal title = titles[objectiveId] or objectiveId
\tlocal spoken = access.captions or access.screenReaderHints
\tlabel.Text = if spoken then `{done}/{total}: {title}` else `{done}/{total}`
\tlabel.BackgroundColor3 = DONE_COLOR
\tif not access.reducedMotion then
\t\tTweenService:Create(label, TweenInfo.new(0.3), {BackgroundTransparency = 0.25}):Play()
\tend
end)
"""

_ADAPTIVE = """--!strict
-- Moves a student's difficulty one step after streaks of right or wrong answers.
local LEVELS = {"easy", "medium", "hard"}
local AdaptiveDifficulty = {}

export type State = {level: number, correctStreak: number, incorrectStreak: number}

function AdaptiveDifficulty.new(startLevel: number): State
\treturn {level = startLevel, correctStreak = 0, incorrectStreak = 0}
end

function AdaptiveDifficulty.record(state: State, correct: boolean): string
\tif correct then
\t\tstate.correctStreak += 1
\t\tstate.incorrectStreak = 0
\t\tif state.correctStreak >= 2 and state.level < #LEVELS then
\t\t\tstate.level += 1
\t\t\tstate.correctStreak = 0
\t\tend
\telse
\t\tstate.incorrectStreak += 1
\t\tstate.correctStreak = 0
\t\tif state.incorrectStreak >= 2 and state.level > 1 then
\t\t\tstate.level -= 1
\t\t\tstate.incorrectStreak = 0
\t\tend
\tend
\treturn LEVELS[state.level]
end

return AdaptiveDifficulty
"""


def script_bundle(
    request: EnvironmentRequest, objectives: list[tuple[str, BloomLevel]]
) -> ScriptBundle:
    """Config, tracker and HUD (plus adaptive difficulty) for ``(title, bloom)`` objectives."""
    ids = objective_ids([title for title, _ in objectives])
    named = [
        {"id": ident, "title": title, "mechanic": MECHANIC_BY_BLOOM[bloom]}
        for ident, (title, bloom) in zip(ids, objectives, strict=True)
    ]
    mechanics = ", ".join(f"{o['mechanic']}_{o['id']}" for o in named)
    scripts = [
        ScriptSpec(
            name="LessonConfig",
            script_type="module",
            content=_config_module(request, named),
            description=f"Settings of the {request.topic} lesson: objectives and accessibility.",
        ),
        ScriptSpec(
            name="ObjectiveTracker",
            script_type="server",
            content=_TRACKER,
            description=f"Checkpoints named after the objectives ({mechanics})."[:2000],
            dependencies=["LessonConfig"],
        ),
        ScriptSpec(
            name="LessonHUD",
            script_type="client",
            content=_HUD,
            description="Progress display that follows the class's accessibility needs.",
            dependencies=["LessonConfig"],
        ),
    ]
    if request.adaptive:
        scripts.append(
            ScriptSpec(
                name="AdaptiveDifficulty",
                script_type="module",
                content=_ADAPTIVE,
                description="Adaptive difficulty steps used by the quiz stations.",
            )
        )
    return ScriptBundle(scripts=scripts)
