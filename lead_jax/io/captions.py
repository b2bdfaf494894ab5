"""Captions for imported clips: a captions file, built-in templates over file names, mirroring.

Sources, by priority in `lead-jax import`:
  * a captions file: one `<clip id or file stem><TAB><caption>` per line, several lines per clip
    allowed, blank lines and lines starting with `#` ignored;
  * a built-in template over the file name: `bandai` (`dataset-N_{content}_{style}_{id}`, the
    Bandai-Namco-Research-Motiondataset 1 and 2) or `deepmimic` (`humanoid3d_{motion}`);
  * a Python format string over the file name, e.g. "a person {name}": fields `stem` (file stem)
    and `name` (stem with `_` and `-` as spaces).

Example:
  bandai_captions("dataset-2_wave-left-hand_elderly_002")
  # ['an elderly person waves their left hand.', 'a person waves with the left hand like an
  #  elderly person.', 'someone waves their left hand like an elderly person.']
"""

from __future__ import annotations

import pathlib
import re
from typing import Callable

from lead_jax.errors import ConfigError, InputError, MissingFileError

# Bandai content -> third-person verb phrases (2 paraphrases each).
BANDAI_CONTENTS: dict[str, tuple[str, str]] = {
    # dataset-1
    "walk": ("walks forward", "is walking"),
    "run": ("runs forward", "is running"),
    "dash": ("dashes forward at full speed", "sprints ahead"),
    "walk-back": ("walks backward", "steps backwards"),
    "walk-left": ("walks to the left", "steps sideways to the left"),
    "walk-right": ("walks to the right", "steps sideways to the right"),
    "bow": ("bows", "bends forward in a bow"),
    "bye": ("waves goodbye with one hand", "waves a hand to say goodbye"),
    "guide": ("gestures with an arm to show the way", "points the way with a hand"),
    "byebye": ("waves goodbye with both hands", "waves both hands to say goodbye"),
    "respond": ("responds to someone with a gesture", "answers someone with a hand gesture"),
    "call": ("calls out to someone", "calls someone over with a gesture"),
    "punch": ("throws a punch", "punches forward"),
    "kick": ("kicks", "kicks forward with one leg"),
    "slash": ("slashes with a sword", "swings a sword in a slashing motion"),
    "dance-long": ("dances", "performs a long dance"),
    "dance-short": ("dances", "performs a short dance"),
    # dataset-2
    "walk-turn-left": ("walks and turns left", "walks forward then turns to the left"),
    "walk-turn-right": ("walks and turns right", "walks forward then turns to the right"),
    "wave-both-hands": ("waves both hands", "waves with both hands"),
    "wave-left-hand": ("waves their left hand", "waves with the left hand"),
    "wave-right-hand": ("waves their right hand", "waves with the right hand"),
    "raise-up-both-hands": ("raises both hands", "lifts both hands up"),
    "raise-up-left-hand": ("raises their left hand", "lifts the left hand up"),
    "raise-up-right-hand": ("raises their right hand", "lifts the right hand up"),
}

# Bandai style -> (subject, manner adverbial).
BANDAI_STYLES: dict[str, tuple[str, str]] = {
    "normal": ("a person", "normally"),
    "happy": ("a happy person", "happily"),
    "sad": ("a sad person", "sadly"),
    "angry": ("an angry person", "angrily"),
    "proud": ("a proud person", "proudly"),
    "not-confident": ("an insecure person", "without confidence"),
    "masculinity": ("a person", "in a masculine manner"),
    "masculine": ("a person", "in a masculine manner"),
    "feminine": ("a person", "in a feminine manner"),
    "childish": ("a child", "like a child"),
    "children": ("a child", "like a child"),
    "youthful": ("a young person", "in a youthful way"),
    "old": ("an old person", "like an old person"),
    "elderly": ("an elderly person", "like an elderly person"),
    "tired": ("a tired person", "wearily"),
    "exhausted": ("an exhausted person", "in an exhausted way"),
    "active": ("an energetic person", "energetically"),
    "musical": ("a person", "in a theatrical, musical way"),
    "giant": ("a person", "heavily like a giant"),
    "chimpira": ("a person", "with a swaggering, thuggish attitude"),
}

# DeepMimic motion -> 3+ paraphrases.
DEEPMIMIC_CAPTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("a person walks forward.", "someone is walking.",
             "a person walks forward at a steady pace."),
    "run": ("a person runs forward.", "someone is running.", "a person jogs forward quickly."),
    "jump": ("a person jumps forward.", "someone leaps forward with both feet.",
             "a person does a long jump."),
    "kick": ("a person kicks.", "someone kicks forward with one leg.",
             "a person kicks and then stands still."),
    "punch": ("a person punches.", "someone throws a punch.",
              "a person punches forward and then stands still."),
    "cartwheel": ("a person does a cartwheel.", "someone cartwheels to the side.",
                  "a person turns a cartwheel on their hands."),
    "backflip": ("a person does a backflip.", "someone flips backwards.",
                 "a person jumps and does a back somersault."),
    "crawl": ("a person crawls forward.", "someone crawls on the ground.",
              "a person is crawling forward on their hands and knees."),
    "roll": ("a person does a forward roll.", "someone rolls forward on the ground.",
             "a person dives forward into a roll and stands up."),
    "spin": ("a person spins around.", "someone turns around in a circle.",
             "a person spins in place."),
    "spinkick": ("a person does a spinning kick.", "someone spins and kicks.",
                 "a person turns around and kicks high."),
    "dance_a": ("a person dances.", "someone is dancing.", "a person dances in place."),
    "dance_b": ("a person dances.", "someone is dancing energetically.",
                "a person performs a dance."),
    "getup_facedown": ("a person lying face down gets up.",
                       "someone gets up from lying on their stomach.",
                       "a person pushes up from the floor and stands up."),
    "getup_faceup": ("a person lying on their back gets up.",
                     "someone gets up from lying on their back.",
                     "a person sits up from the floor and stands up."),
}

_BANDAI_STEM = re.compile(r"^dataset-(\d+)_([a-z-]+)_([a-z-]+)_(\d+)$")


def bandai_captions(stem: str) -> list[str]:
  """Three captions from `dataset-N_{content}_{style}_{id}`."""
  match = _BANDAI_STEM.match(stem)
  if not match:
    raise InputError(f"{stem}: not a Bandai file name (dataset-N_content_style_id)")
  _, content, style, _ = match.groups()
  if content not in BANDAI_CONTENTS:
    raise InputError(f"{stem}: unknown Bandai content {content!r}; known: "
                     f"{', '.join(sorted(BANDAI_CONTENTS))}")
  if style not in BANDAI_STYLES:
    raise InputError(f"{stem}: unknown Bandai style {style!r}; known: "
                     f"{', '.join(sorted(BANDAI_STYLES))}")
  phrase_a, phrase_b = BANDAI_CONTENTS[content]
  subject, manner = BANDAI_STYLES[style]
  captions = [f"{subject} {phrase_a}.", f"a person {phrase_b} {manner}.",
              f"someone {phrase_a} {manner}."]
  return list(dict.fromkeys(captions))


def deepmimic_captions(stem: str) -> list[str]:
  """Three captions from `humanoid3d_{motion}`."""
  motion = stem.removeprefix("humanoid3d_")
  if motion not in DEEPMIMIC_CAPTIONS:
    raise InputError(f"{stem}: unknown DeepMimic motion {motion!r}; known: "
                     f"{', '.join(sorted(DEEPMIMIC_CAPTIONS))}")
  return list(DEEPMIMIC_CAPTIONS[motion])


def format_template(template: str) -> Callable[[str], list[str]]:
  """A captioner from a Python format string with fields {stem} and {name}."""
  def captioner(stem: str) -> list[str]:
    try:
      text = template.format(stem=stem, name=" ".join(re.split(r"[_\-]+", stem)).strip())
    except (KeyError, IndexError, ValueError) as e:
      raise ConfigError(f"--template {template!r}: bad format string ({e!r}); "
                        "available fields: {stem}, {name}") from e
    return [text]
  captioner("probe")  # fail early on a bad format string
  return captioner


BUILTIN_TEMPLATES: dict[str, Callable[[str], list[str]]] = {
    "bandai": bandai_captions,
    "deepmimic": deepmimic_captions,
}


def get_captioner(template: str) -> Callable[[str], list[str]]:
  """`bandai`, `deepmimic` or a format string -> stem -> list of captions."""
  if template in BUILTIN_TEMPLATES:
    return BUILTIN_TEMPLATES[template]
  if "{" not in template:
    raise ConfigError(f"--template {template!r}: not a built-in template "
                      f"({', '.join(BUILTIN_TEMPLATES)}) and has no {{stem}}/{{name}} field")
  return format_template(template)


def read_captions_file(path: str | pathlib.Path) -> dict[str, list[str]]:
  """`<id><TAB><caption>` lines -> {id: [captions]} (order kept)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"captions file not found: {path}")
  captions: dict[str, list[str]] = {}
  for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    if "\t" not in line:
      raise InputError(f"{path}:{number}: expected '<clip id><TAB><caption>', found {line!r}")
    clip_id, caption = line.split("\t", 1)
    clip_id, caption = clip_id.strip(), caption.strip()
    if not clip_id or not caption:
      raise InputError(f"{path}:{number}: empty clip id or caption in {line!r}")
    captions.setdefault(clip_id, []).append(caption)
  return captions


_SWAPS = {"left": "right", "right": "left", "clockwise": "counterclockwise",
          "counterclockwise": "clockwise", "anticlockwise": "clockwise",
          "leftward": "rightward", "rightward": "leftward", "leftwards": "rightwards",
          "rightwards": "leftwards"}
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(_SWAPS, key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)


def swap_left_right(caption: str) -> str:
  """The caption of the mirrored motion: left <-> right, clockwise <-> counterclockwise."""
  def repl(match: re.Match) -> str:
    word = match.group(0)
    out = _SWAPS[word.lower()]
    return out.capitalize() if word[0].isupper() else out
  return _SWAP_RE.sub(repl, caption)
