"""Learner-facing sentence templates of the offline model, per language.

The offline model writes English, Spanish and French; any other language falls
back to English and the artifact says so (its ``language`` is ``en``), so a
reviewer sees the mismatch instead of mislabelled text.
"""

from __future__ import annotations

import unicodedata

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "lesson_title": "Exploring {topic}",
        "lesson_desc": "A {minutes}-minute {subject} lesson for grade {grade}: students explore "
        "{topic} in a Roblox {world} and show what they learned at checkpoints.",
        "intro": "Welcome to {topic}",
        "intro_sum": "Students arrive in the {world}, meet the guide and hear what they will "
        "discover about {topic}.",
        "explore": "Explore {topic}",
        "explore_sum": "Students move through the world and gather evidence about {topic} at "
        "each checkpoint.",
        "challenge": "The {topic} challenge",
        "challenge_sum": "Teams use what they found to solve a challenge about {topic}.",
        "reflect": "Reflect and share",
        "reflect_sum": "The class shares answers, reviews the goals and names one question about "
        "{topic} to explore next.",
        "act_collect": "Find the clue stations about {topic} and collect the facts for: {goal}.",
        "act_explore": "Walk the trail, read each sign about {topic} and tell a partner: {goal}.",
        "act_build": "With your team, build a model in the world that shows: {goal}.",
        "act_experiment": "Change one thing in the {topic} station, watch what happens, and "
        "record it for: {goal}.",
        "act_discuss": "Vote at the debate circle and give one reason for your choice: {goal}.",
        "act_reflect": "Write one sentence about what you learned about {topic}.",
        "obj_remember": "Identify the key facts and words about {topic}",
        "obj_understand": "Explain in your own words how {topic} works",
        "obj_apply": "Use ideas about {topic} to solve a problem in the Roblox world",
        "obj_analyze": "Compare the parts of {topic} and explain how they are connected",
        "obj_evaluate": "Judge which explanation of {topic} is best supported by evidence",
        "obj_create": "Design a model or plan that shows how {topic} works",
        "quiz_title": "{topic}: check your understanding",
        "quiz_desc": "{count} questions about {topic} for grade {grade}.",
        "mc_q": "Which choice best shows this goal: \u201c{goal}\u201d?",
        "mc_right": "Use evidence from the {topic} checkpoints to support the answer",
        "mc_wrong_1": "Guess without looking at the {topic} clues",
        "mc_wrong_2": "Repeat a fact that is not about {topic}",
        "mc_wrong_3": "Skip the activity and copy a classmate",
        "right_why": "This uses what the lesson showed about {topic}.",
        "wrong_why": "This does not use what the lesson taught about {topic}.",
        "tf_true": "The activities of this lesson are about {topic}.",
        "tf_false": "{topic} has nothing to do with {subject}.",
        "tf_why_true": "Every checkpoint of the lesson is about {topic}.",
        "tf_why_false": "The lesson shows how {topic} is part of {subject}.",
        "ms_q": "Which of these help you reach the goal \u201c{goal}\u201d? Select all that apply.",
        "ms_right_1": "Collect the clues at each checkpoint",
        "ms_right_2": "Talk with your team about {topic}",
        "ms_wrong_1": "Leave the world before the challenge",
        "ms_wrong_2": "Ignore the hints and signs",
        "sa_q": "In one or two sentences, explain how {topic} connects to this goal: "
        "\u201c{goal}\u201d.",
        "sa_answer": "Names a fact about {topic} from the lesson and links it to the goal.",
        "hint": "Think back to the checkpoint about {topic}.",
        "explanation": "This question checks the goal \u201c{goal}\u201d.",
    },
    "es": {
        "lesson_title": "Explorando {topic}",
        "lesson_desc": "Una clase de {subject} de {minutes} minutos para el grado {grade}: los "
        "estudiantes exploran {topic} en un mundo de Roblox ({world}) y muestran lo aprendido.",
        "intro": "Bienvenidos a {topic}",
        "intro_sum": "Los estudiantes llegan al mundo, conocen al gu\u00eda y descubren qu\u00e9 "
        "aprender\u00e1n sobre {topic}.",
        "explore": "Explora {topic}",
        "explore_sum": "Los estudiantes recorren el mundo y re\u00fanen evidencias sobre {topic} "
        "en cada punto de control.",
        "challenge": "El desaf\u00edo de {topic}",
        "challenge_sum": "Los equipos usan lo que encontraron para resolver un desaf\u00edo "
        "sobre {topic}.",
        "reflect": "Reflexiona y comparte",
        "reflect_sum": "La clase comparte respuestas, repasa las metas y propone una pregunta "
        "sobre {topic}.",
        "act_collect": "Encuentra las estaciones de pistas sobre {topic} y re\u00fane los datos "
        "para: {goal}.",
        "act_explore": "Recorre el sendero, lee cada cartel sobre {topic} y cu\u00e9ntale a un "
        "compa\u00f1ero: {goal}.",
        "act_build": "Con tu equipo, construye un modelo en el mundo que muestre: {goal}.",
        "act_experiment": "Cambia una cosa en la estaci\u00f3n de {topic}, observa qu\u00e9 pasa "
        "y an\u00f3talo para: {goal}.",
        "act_discuss": "Vota en el c\u00edrculo de debate y da una raz\u00f3n: {goal}.",
        "act_reflect": "Escribe una frase sobre lo que aprendiste de {topic}.",
        "obj_remember": "Identificar los datos y palabras clave sobre {topic}",
        "obj_understand": "Explicar con tus palabras c\u00f3mo funciona {topic}",
        "obj_apply": "Usar ideas sobre {topic} para resolver un problema en el mundo de Roblox",
        "obj_analyze": "Comparar las partes de {topic} y explicar c\u00f3mo se relacionan",
        "obj_evaluate": "Juzgar qu\u00e9 explicaci\u00f3n de {topic} tiene m\u00e1s evidencias",
        "obj_create": "Dise\u00f1ar un modelo que muestre c\u00f3mo funciona {topic}",
        "quiz_title": "{topic}: comprueba lo que sabes",
        "quiz_desc": "{count} preguntas sobre {topic} para el grado {grade}.",
        "mc_q": "\u00bfQu\u00e9 opci\u00f3n muestra mejor esta meta: \u201c{goal}\u201d?",
        "mc_right": "Usar evidencias de los puntos de control de {topic} para justificar",
        "mc_wrong_1": "Adivinar sin mirar las pistas de {topic}",
        "mc_wrong_2": "Repetir un dato que no trata de {topic}",
        "mc_wrong_3": "Saltar la actividad y copiar a un compa\u00f1ero",
        "right_why": "Usa lo que la clase mostr\u00f3 sobre {topic}.",
        "wrong_why": "No usa lo que la clase ense\u00f1\u00f3 sobre {topic}.",
        "tf_true": "Las actividades de esta clase tratan de {topic}.",
        "tf_false": "{topic} no tiene nada que ver con {subject}.",
        "tf_why_true": "Cada punto de control de la clase trata de {topic}.",
        "tf_why_false": "La clase muestra c\u00f3mo {topic} forma parte de {subject}.",
        "ms_q": "\u00bfQu\u00e9 te ayuda a lograr la meta \u201c{goal}\u201d? Elige todas las "
        "correctas.",
        "ms_right_1": "Reunir las pistas en cada punto de control",
        "ms_right_2": "Hablar con tu equipo sobre {topic}",
        "ms_wrong_1": "Salir del mundo antes del desaf\u00edo",
        "ms_wrong_2": "Ignorar las pistas y los carteles",
        "sa_q": "En una o dos frases, explica c\u00f3mo se relaciona {topic} con esta meta: "
        "\u201c{goal}\u201d.",
        "sa_answer": "Nombra un dato de {topic} visto en clase y lo relaciona con la meta.",
        "hint": "Recuerda el punto de control sobre {topic}.",
        "explanation": "Esta pregunta comprueba la meta \u201c{goal}\u201d.",
    },
    "fr": {
        "lesson_title": "D\u00e9couvrir {topic}",
        "lesson_desc": "Une le\u00e7on de {subject} de {minutes} minutes pour le niveau {grade} : "
        "les \u00e9l\u00e8ves explorent {topic} dans un monde Roblox ({world}).",
        "intro": "Bienvenue dans {topic}",
        "intro_sum": "Les \u00e9l\u00e8ves arrivent dans le monde, rencontrent le guide et "
        "d\u00e9couvrent ce qu'ils vont apprendre sur {topic}.",
        "explore": "Explorer {topic}",
        "explore_sum": "Les \u00e9l\u00e8ves parcourent le monde et r\u00e9unissent des indices "
        "sur {topic} \u00e0 chaque \u00e9tape.",
        "challenge": "Le d\u00e9fi {topic}",
        "challenge_sum": "Les \u00e9quipes utilisent leurs indices pour r\u00e9soudre un "
        "d\u00e9fi sur {topic}.",
        "reflect": "R\u00e9fl\u00e9chir et partager",
        "reflect_sum": "La classe partage ses r\u00e9ponses, revoit les objectifs et propose une "
        "question sur {topic}.",
        "act_collect": "Trouve les stations d'indices sur {topic} et rassemble les faits pour : "
        "{goal}.",
        "act_explore": "Suis le sentier, lis chaque panneau sur {topic} et explique \u00e0 un "
        "camarade : {goal}.",
        "act_build": "Avec ton \u00e9quipe, construis un mod\u00e8le qui montre : {goal}.",
        "act_experiment": "Change un \u00e9l\u00e9ment de la station {topic}, observe le "
        "r\u00e9sultat et note-le pour : {goal}.",
        "act_discuss": "Vote au cercle de d\u00e9bat et donne une raison : {goal}.",
        "act_reflect": "\u00c9cris une phrase sur ce que tu as appris sur {topic}.",
        "obj_remember": "Identifier les faits et le vocabulaire cl\u00e9s de {topic}",
        "obj_understand": "Expliquer avec ses mots comment fonctionne {topic}",
        "obj_apply": "Utiliser des id\u00e9es sur {topic} pour r\u00e9soudre un probl\u00e8me",
        "obj_analyze": "Comparer les \u00e9l\u00e9ments de {topic} et expliquer leurs liens",
        "obj_evaluate": "Juger quelle explication de {topic} est la mieux appuy\u00e9e",
        "obj_create": "Concevoir un mod\u00e8le qui montre comment fonctionne {topic}",
        "quiz_title": "{topic} : v\u00e9rifie tes connaissances",
        "quiz_desc": "{count} questions sur {topic} pour le niveau {grade}.",
        "mc_q": "Quel choix montre le mieux cet objectif : \u00ab {goal} \u00bb ?",
        "mc_right": "Utiliser les indices des \u00e9tapes sur {topic} pour justifier",
        "mc_wrong_1": "Deviner sans regarder les indices sur {topic}",
        "mc_wrong_2": "R\u00e9p\u00e9ter un fait qui ne concerne pas {topic}",
        "mc_wrong_3": "Sauter l'activit\u00e9 et copier un camarade",
        "right_why": "Cela utilise ce que la le\u00e7on a montr\u00e9 sur {topic}.",
        "wrong_why": "Cela n'utilise pas ce que la le\u00e7on a appris sur {topic}.",
        "tf_true": "Les activit\u00e9s de cette le\u00e7on portent sur {topic}.",
        "tf_false": "{topic} n'a rien \u00e0 voir avec {subject}.",
        "tf_why_true": "Chaque \u00e9tape de la le\u00e7on porte sur {topic}.",
        "tf_why_false": "La le\u00e7on montre comment {topic} fait partie de {subject}.",
        "ms_q": "Qu'est-ce qui t'aide \u00e0 atteindre l'objectif \u00ab {goal} \u00bb ? "
        "Coche toutes les bonnes r\u00e9ponses.",
        "ms_right_1": "Rassembler les indices \u00e0 chaque \u00e9tape",
        "ms_right_2": "Parler de {topic} avec ton \u00e9quipe",
        "ms_wrong_1": "Quitter le monde avant le d\u00e9fi",
        "ms_wrong_2": "Ignorer les indices et les panneaux",
        "sa_q": "En une ou deux phrases, explique le lien entre {topic} et cet objectif : "
        "\u00ab {goal} \u00bb.",
        "sa_answer": "Cite un fait sur {topic} vu en classe et le relie \u00e0 l'objectif.",
        "hint": "Repense \u00e0 l'\u00e9tape sur {topic}.",
        "explanation": "Cette question v\u00e9rifie l'objectif \u00ab {goal} \u00bb.",
    },
}


def language_of(tag: str) -> str:
    """The phrase table used for a BCP 47 tag (its primary subtag, else English)."""
    primary = tag.split("-")[0].lower()
    return primary if primary in PHRASES else "en"


def artifact_language(tag: str) -> str:
    """The tag an artifact written for ``tag`` honestly carries."""
    return tag if language_of(tag) == tag.split("-")[0].lower() else "en"


def phrase(language: str, key: str, **values: object) -> str:
    return PHRASES[language][key].format(**values)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, never inside a character sequence that
    draws as one (an emoji joined by U+200D, a skin tone or variation selector, an accent
    combined with its letter): a cut there left half an emoji at the end of a title."""
    if len(text) <= limit:
        return text
    end = limit
    while end > 0 and (_joins(text[end]) or text[end - 1] == _ZWJ):
        end -= 1
    return text[:end].rstrip() or text[:limit]  # all joined: a cut anywhere is inside one


_ZWJ = "\u200d"


def _joins(char: str) -> bool:
    """Whether ``char`` belongs to the character before it."""
    return (
        char == _ZWJ
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
    )
