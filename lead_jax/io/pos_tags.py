"""A small deterministic part-of-speech tagger for HumanML3D caption lines.

HumanML3D stores each caption as `caption#word/POS word/POS ...#start#end`, tagged with spaCy
(`en_core_web_sm`): non-alphabetic tokens dropped, NOUN and VERB tokens lemmatised (except
"left"). spaCy is not a dependency here, so this module tags with a lexicon of the closed word
classes and of the motion vocabulary, plus suffix rules, and lemmatises crudely (irregular forms
from a table, then -ing / -ed / -es / -s stripping).

Limitations (documented, by design): no context, so a word has one tag whatever its role
("kick" is always VERB, "walk" in "goes for a walk" too); unknown words are NOUN unless a suffix
says otherwise (-ly ADV, -ing/-ed VERB, -ous/-ful/-ive/-al ADJ); lemmas of unknown verbs can be
wrong for doubled consonants ("stopped" -> "stopp" is avoided only for the listed verbs). The T2M
evaluator reads these tags through its own vocabulary (unknown words become `unk/OTHER`), so an
imperfect tag costs little.

Example:
  text_line("A man walks forward.")  # 'A man walks forward.#a/DET man/NOUN walk/VERB forward/ADV#0.0#0.0'
"""

from __future__ import annotations

import re

_CLOSED = {
    "DET": "a an the this that these those some any each every another their his her its my "
           "your our no all both either neither",
    "PRON": "he she it they them him her someone somebody something anyone anybody anything "
            "everyone everybody everything i you we me us himself herself itself themselves "
            "oneself who what which",
    "ADP": "with in on at to from into onto over under of by for about across through around "
           "along behind beside between toward towards against upon above below near like "
           "without within off during after before since until",
    "CCONJ": "and or but nor yet",
    "SCONJ": "while as if because though although whereas when whilst so",
    "AUX": "is are was were be been being am do does did has have had can could will would "
           "shall should may might must",
    "PART": "not n't to",
    "NUM": "one two three four five six seven eight nine ten eleven twelve twenty thirty "
           "hundred half once twice",
    "ADV": "forward forwards backward backwards back up down away then again around together "
           "quickly slowly fast very also still just only sideways upward upwards downward "
           "downwards outward inward here there twice repeatedly briskly gently steadily "
           "continuously straight aside apart ahead afterwards later now",
    "ADJ": "left right elderly old young happy sad angry proud confident timid shy tired "
           "exhausted energetic active feminine masculine childish heavy light big small large "
           "little long short slow quick full same other both several few many high low deep "
           "wide narrow playful cheerful graceful clumsy lively musical theatrical insecure "
           "whole entire original steady normal calm excited nervous giant huge tall",
}

# Irregular or ambiguous verb forms -> lemma.
_VERB_FORMS = {
    "ran": "run", "running": "run", "runs": "run", "run": "run",
    "swam": "swim", "swimming": "swim", "stood": "stand", "standing": "stand",
    "sat": "sit", "sitting": "sit", "got": "get", "getting": "get", "gets": "get",
    "went": "go", "goes": "go", "going": "go", "gone": "go", "came": "come", "coming": "come",
    "took": "take", "taking": "take", "made": "make", "making": "make", "threw": "throw",
    "thrown": "throw", "throwing": "throw", "lay": "lie", "lying": "lie", "lies": "lie",
    "fell": "fall", "fallen": "fall", "falling": "fall", "held": "hold", "holding": "hold",
    "leapt": "leap", "leaped": "leap", "swung": "swing", "swinging": "swing",
    "stepped": "step", "stepping": "step", "hopped": "hop", "hopping": "hop",
    "skipped": "skip", "skipping": "skip", "jogged": "jog", "jogging": "jog",
    "spun": "spin", "spinning": "spin", "stopped": "stop", "stopping": "stop",
    "clapped": "clap", "clapping": "clap", "dancing": "dance", "danced": "dance",
    "dances": "dance", "waving": "wave", "waved": "wave", "waves": "wave",
    "raising": "raise", "raised": "raise", "raises": "raise", "moving": "move",
    "moves": "move", "moved": "move", "bending": "bend", "bent": "bend",
    "kicking": "kick", "punching": "punch", "punches": "punch", "crawling": "crawl",
    "rolling": "roll", "walking": "walk", "jumping": "jump", "turning": "turn",
    "dashes": "dash", "dashing": "dash", "crouches": "crouch", "crouching": "crouch",
    "slashes": "slash", "slashing": "slash", "reaches": "reach", "reaching": "reach",
    "sprints": "sprint", "sprinting": "sprint", "lifts": "lift", "lifting": "lift",
    "bows": "bow", "bowing": "bow", "bowed": "bow", "gestures": "gesture",
    "gesturing": "gesture", "points": "point", "pointing": "point", "performs": "perform",
    "performing": "perform", "does": "do", "doing": "do", "did": "do",
    "responds": "respond", "responding": "respond", "calls": "call", "calling": "call",
    "beckons": "beckon", "beckoning": "beckon", "flips": "flip", "flipping": "flip",
    "cartwheels": "cartwheel", "leaps": "leap", "leaping": "leap", "answers": "answer",
    "says": "say", "saying": "say", "shows": "show", "showing": "show", "swings": "swing",
    "rises": "rise", "rising": "rise", "rose": "rise", "pushes": "push", "pushing": "push",
}
_VERB_LEMMAS = {
    "walk", "run", "jump", "kick", "punch", "crawl", "roll", "spin", "dance", "wave", "raise",
    "lift", "turn", "move", "bend", "bow", "step", "hop", "skip", "jog", "stand", "sit", "get",
    "go", "come", "take", "make", "throw", "lie", "fall", "hold", "leap", "swing", "stop",
    "clap", "dash", "sprint", "slash", "reach", "gesture", "point", "perform", "do", "respond",
    "call", "beckon", "flip", "cartwheel", "answer", "say", "show", "rise", "push", "pull",
    "stretch", "squat", "crouch", "shake", "nod", "look", "climb", "strut", "stagger",
    "shuffle", "march", "stroll", "tiptoe", "limp", "swagger", "greet", "salute", "play",
}
# Nouns that never act as verbs here, and irregular plurals.
_NOUN_FORMS = {"feet": "foot", "people": "person", "men": "man", "women": "woman",
               "children": "child", "knees": "knee", "legs": "leg", "arms": "arm",
               "hands": "hand", "backflips": "backflip"}
_NOUN_WORDS = {"person", "man", "woman", "child", "kid", "hand", "arm", "leg", "foot", "knee",
               "head", "body", "back", "ground", "floor", "sword", "way", "circle", "place",
               "side", "backflip", "somersault", "motion", "pace", "speed", "manner", "style",
               "thug", "giant", "goodbye", "direction", "dance", "bow", "air", "shoulder",
               "hip", "chest", "face", "stomach", "belly", "position", "stance"}

_TAG_OF: dict[str, str] = {}
for _tag, _words in _CLOSED.items():
  for _w in _words.split():
    _TAG_OF.setdefault(_w, _tag)

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def _verb_lemma(word: str) -> str:
  if word in _VERB_FORMS:
    return _VERB_FORMS[word]
  for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
    if word.endswith(suffix) and len(word) > len(suffix) + 2:
      stem = word[: -len(suffix)] + repl
      for candidate in (stem, stem + "e"):
        if candidate in _VERB_LEMMAS:
          return candidate
      if suffix in ("ing", "ed"):
        return stem + "e" if stem + "e" in _VERB_LEMMAS else stem
      return stem if suffix != "es" or word.endswith(("ches", "shes", "sses", "xes")) else (
          word[:-1])
  return word


def _noun_lemma(word: str) -> str:
  if word in _NOUN_FORMS:
    return _NOUN_FORMS[word]
  if word.endswith("ies") and len(word) > 4:
    return word[:-3] + "y"
  if word.endswith(("ches", "shes", "sses", "xes")):
    return word[:-2]
  if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
    return word[:-1]
  return word


def tag_word(word: str) -> tuple[str, str]:
  """(lemma, POS) of one lower-case word, without context."""
  if word in _TAG_OF:
    return word, _TAG_OF[word]
  if word in _NOUN_WORDS or word in _NOUN_FORMS:
    return _noun_lemma(word), "NOUN"
  verb = _verb_lemma(word)
  if verb in _VERB_LEMMAS:
    return verb, "VERB"
  if word.endswith("ly") and len(word) > 4:
    return word, "ADV"
  if word.endswith(("ing", "ed")) and len(word) > 5:
    return verb, "VERB"
  if word.endswith(("ous", "ful", "ive", "able", "al", "ish")):
    return word, "ADJ"
  return _noun_lemma(word), "NOUN"


def tag_caption(caption: str) -> list[tuple[str, str]]:
  """[(lemma, POS)] for the alphabetic tokens of a caption (lower-cased)."""
  words = [w.lower() for w in _WORD.findall(caption)]
  tags = [tag_word(w) for w in words]
  for i in range(1, len(tags)):
    lemma, tag = tags[i]
    if tag == "VERB" and lemma == words[i] and tags[i - 1][1] == "DET":
      tags[i] = (lemma, "NOUN")  # "a kick", "the dance"
    if tags[i - 1] in (("does", "AUX"), ("do", "AUX"), ("did", "AUX")) and tag in ("DET", "NOUN"):
      tags[i - 1] = (_VERB_FORMS.get(words[i - 1], words[i - 1]), "VERB")  # "does a cartwheel"
  return tags


def text_line(caption: str, start: float = 0.0, end: float = 0.0) -> str:
  """One HumanML3D `texts/<id>.txt` line: `caption#word/POS ...#start#end`."""
  caption = " ".join(caption.replace("#", " ").split())
  tokens = " ".join(f"{w}/{t}" for w, t in tag_caption(caption))
  return f"{caption}#{tokens}#{float(start)}#{float(end)}"


def parse_text_line(line: str) -> tuple[str, list[tuple[str, str]], float, float]:
  """Inverse of `text_line`: (caption, [(word, POS)], start, end)."""
  parts = line.rstrip("\n").split("#")
  if len(parts) != 4:
    raise ValueError(f"expected 'caption#tokens#start#end', found {line!r}")
  caption, tokens, start, end = parts
  pairs = [tuple(tok.rsplit("/", 1)) for tok in tokens.split()]
  if any(len(p) != 2 for p in pairs):
    raise ValueError(f"malformed word/POS token in {line!r}")
  return caption, pairs, float(start), float(end)
