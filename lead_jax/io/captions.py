"""Captions for imported clips: a captions file, built-in templates over file names, mirroring.

Sources, by priority in `lead-jax import`:
  * a captions file: one `<clip id or file stem><TAB><caption>` per line, several lines per clip
    allowed, blank lines and lines starting with `#` ignored;
  * a built-in template over the file name: `bandai` (`dataset-N_{content}_{style}_{id}`, the
    Bandai-Namco-Research-Motiondataset 1 and 2; three fixed sentences), `bandai_paraphrases`
    (the same files, six HumanML3D-like paraphrases per clip drawn from subjects, style
    adjectives, verb forms and style adverbs, deterministic per file name) or `deepmimic`
    (`humanoid3d_{motion}`);
  * a Python format string over the file name, e.g. "a person {name}": fields `stem` (file stem)
    and `name` (stem with `_` and `-` as spaces).

Example:
  bandai_captions("dataset-2_wave-left-hand_elderly_002")
  # ['an elderly person waves their left hand.', 'a person waves with the left hand like an
  #  elderly person.', 'someone waves their left hand like an elderly person.']
  bandai_paraphrases("dataset-2_walk_elderly_002")
  # e.g. ['an old man walks forward.', 'someone is walking slowly and stiffly.', ...] (6 captions)
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import random
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


@dataclasses.dataclass(frozen=True)
class BandaiClip:
  """The labels in a Bandai file name `dataset-{dataset}_{content}_{style}_{take}`."""
  dataset: int
  content: str
  style: str
  take: str


def parse_bandai_stem(stem: str) -> BandaiClip:
  """`dataset-2_wave-left-hand_elderly_002` -> BandaiClip(2, 'wave-left-hand', 'elderly', '002');
  InputError for another name or an unknown content / style."""
  match = _BANDAI_STEM.match(stem)
  if not match:
    raise InputError(f"{stem}: not a Bandai file name (dataset-N_content_style_id)")
  dataset, content, style, take = match.groups()
  if content not in BANDAI_CONTENTS:
    raise InputError(f"{stem}: unknown Bandai content {content!r}; known: "
                     f"{', '.join(sorted(BANDAI_CONTENTS))}")
  if style not in BANDAI_STYLES:
    raise InputError(f"{stem}: unknown Bandai style {style!r}; known: "
                     f"{', '.join(sorted(BANDAI_STYLES))}")
  return BandaiClip(int(dataset), content, style, take)


def bandai_captions(stem: str) -> list[str]:
  """Three captions from `dataset-N_{content}_{style}_{id}`."""
  clip = parse_bandai_stem(stem)
  content, style = clip.content, clip.style
  phrase_a, phrase_b = BANDAI_CONTENTS[content]
  subject, manner = BANDAI_STYLES[style]
  captions = [f"{subject} {phrase_a}.", f"a person {phrase_b} {manner}.",
              f"someone {phrase_a} {manner}."]
  return list(dict.fromkeys(captions))


# Content -> third-person verb phrases (simple, progressive, with direction / paraphrased).
BANDAI_VERBS: dict[str, tuple[str, ...]] = {
    "walk": ("walks", "walks forward", "is walking", "is walking forward", "walks straight ahead",
             "takes a few steps forward"),
    "run": ("runs", "runs forward", "is running", "is running forward", "jogs forward",
            "runs straight ahead"),
    "dash": ("dashes forward", "sprints", "is sprinting forward", "runs forward at full speed",
             "dashes ahead"),
    "walk-back": ("walks backward", "is walking backwards", "steps backwards",
                  "moves backward step by step"),
    "walk-left": ("walks to the left", "is walking sideways to the left",
                  "steps sideways to the left", "moves to the left"),
    "walk-right": ("walks to the right", "is walking sideways to the right",
                   "steps sideways to the right", "moves to the right"),
    "walk-turn-left": ("walks and turns left", "walks forward and then turns left",
                       "is walking and turning to the left", "walks, making a left turn",
                       "turns left while walking"),
    "walk-turn-right": ("walks and turns right", "walks forward and then turns right",
                        "is walking and turning to the right", "walks, making a right turn",
                        "turns right while walking"),
    "bow": ("bows", "is bowing", "bends forward in a bow", "bows politely"),
    "bye": ("waves goodbye with one hand", "is waving goodbye", "waves a hand to say goodbye",
            "says goodbye with a wave"),
    "byebye": ("waves goodbye with both hands", "is waving both hands goodbye",
               "waves both hands to say goodbye"),
    "guide": ("gestures with an arm to show the way", "points the way with a hand",
              "is showing someone the way", "guides someone with an arm gesture"),
    "respond": ("responds to someone with a gesture", "answers someone with a hand gesture",
                "is responding with a gesture"),
    "call": ("calls out to someone", "calls someone over with a gesture",
             "is calling someone over"),
    "punch": ("throws a punch", "punches forward", "is punching", "punches with a fist"),
    "kick": ("kicks", "kicks forward with one leg", "is kicking", "does a kick"),
    "slash": ("slashes with a sword", "swings a sword", "is slashing with a sword",
              "swings a sword in a slashing motion"),
    "dance-long": ("dances", "is dancing", "performs a long dance", "dances for a while"),
    "dance-short": ("dances", "is dancing", "performs a short dance", "does a short dance"),
    "wave-both-hands": ("waves both hands", "is waving both hands", "waves with both hands",
                        "waves both arms in greeting"),
    "wave-left-hand": ("waves the left hand", "is waving their left hand",
                       "waves with the left hand", "waves hello with the left hand"),
    "wave-right-hand": ("waves the right hand", "is waving their right hand",
                        "waves with the right hand", "waves hello with the right hand"),
    "raise-up-both-hands": ("raises both hands", "is raising both hands", "lifts both hands up",
                            "puts both hands up in the air", "raises both arms above the head"),
    "raise-up-left-hand": ("raises the left hand", "is raising their left hand",
                           "lifts the left hand up", "puts the left hand up in the air",
                           "raises the left arm"),
    "raise-up-right-hand": ("raises the right hand", "is raising their right hand",
                            "lifts the right hand up", "puts the right hand up in the air",
                            "raises the right arm"),
}


@dataclasses.dataclass(frozen=True)
class StyleWords:
  """How captions say a style: adjectives of the subject ("an elderly"), subject nouns that
  carry it alone ("an old man"), adverbial phrases ("slowly and stiffly") and `like` comparisons
  ("like an old person"). Empty adjective "" means a plain subject."""
  adjectives: tuple[str, ...]
  nouns: tuple[str, ...]
  adverbs: tuple[str, ...]
  likes: tuple[str, ...]


_NO_NOUNS: tuple[str, ...] = ()
BANDAI_STYLE_WORDS: dict[str, StyleWords] = {
    "normal": StyleWords(("", "an ordinary", "a calm"), _NO_NOUNS,
                         ("normally", "in an ordinary way", "casually", "in a relaxed way"), ()),
    "active": StyleWords(("an energetic", "a lively", "an active"), _NO_NOUNS,
                         ("energetically", "briskly", "with a lot of energy", "vigorously"),
                         ("like an athlete",)),
    "elderly": StyleWords(("an elderly", "an old", "an aged"), ("an old man", "an old woman"),
                          ("slowly and stiffly", "slowly, slightly hunched over",
                           "carefully and slowly", "with stiff, careful movements"),
                          ("like an elderly person", "like an old person")),
    "old": StyleWords(("an elderly", "an old", "an aged"), ("an old man", "an old woman"),
                      ("slowly and stiffly", "slowly, slightly hunched over",
                       "carefully and slowly"), ("like an elderly person", "like an old person")),
    "exhausted": StyleWords(("an exhausted", "a worn-out", "a very tired"), _NO_NOUNS,
                            ("wearily", "sluggishly", "with heavy, exhausted movements",
                             "as if out of energy"), ("like someone who is exhausted",)),
    "tired": StyleWords(("a tired", "a weary", "a sleepy"), _NO_NOUNS,
                        ("wearily", "tiredly", "with heavy, tired movements"),
                        ("like someone who is tired",)),
    "feminine": StyleWords(("a graceful", "an elegant"), ("a woman",),
                           ("in a feminine manner", "gracefully", "elegantly"),
                           ("like a graceful woman",)),
    "masculine": StyleWords(("a strong", "a bold", "a macho"), ("a man",),
                            ("in a masculine manner", "boldly", "with a broad, strong posture"),
                            ("like a tough guy",)),
    "masculinity": StyleWords(("a strong", "a bold", "a macho"), ("a man",),
                              ("in a masculine manner", "boldly",
                               "with a broad, strong posture"), ("like a tough guy",)),
    "youthful": StyleWords(("a young", "a youthful", "a cheerful young"),
                           ("a young man", "a young woman", "a teenager"),
                           ("in a youthful way", "with a youthful bounce", "lightly and quickly"),
                           ("like a young person",)),
    "childish": StyleWords(("a childish", "a playful"), ("a child", "a kid"),
                           ("playfully", "in a childish way"), ("like a child", "like a kid")),
    "children": StyleWords(("a childish", "a playful"), ("a child", "a kid"),
                           ("playfully", "in a childish way"), ("like a child", "like a kid")),
    "happy": StyleWords(("a happy", "a cheerful", "a joyful"), _NO_NOUNS,
                        ("happily", "cheerfully", "joyfully"), ("like someone in a good mood",)),
    "sad": StyleWords(("a sad", "an unhappy", "a gloomy"), _NO_NOUNS,
                      ("sadly", "gloomily", "with drooping shoulders"),
                      ("like someone who is sad",)),
    "angry": StyleWords(("an angry", "a furious", "an annoyed"), _NO_NOUNS,
                        ("angrily", "furiously", "with sharp, angry movements"),
                        ("like someone who is angry",)),
    "proud": StyleWords(("a proud", "a confident", "a self-assured"), _NO_NOUNS,
                        ("proudly", "with the chest out", "confidently"),
                        ("like someone who is proud",)),
    "not-confident": StyleWords(("an insecure", "a shy", "a timid"), _NO_NOUNS,
                                ("without confidence", "timidly", "hesitantly"),
                                ("like someone who is unsure",)),
    "musical": StyleWords(("a theatrical", "a dramatic"), ("a musical actor",),
                          ("in a theatrical, musical way", "theatrically", "dramatically"),
                          ("like a musical performer",)),
    "giant": StyleWords(("a huge", "a heavy", "a giant"), ("a giant",),
                        ("heavily", "with big, heavy steps", "ponderously"), ("like a giant",)),
    "chimpira": StyleWords(("a swaggering", "a thuggish", "a cocky"), ("a thug", "a punk"),
                           ("with a swagger", "in a thuggish way", "cockily"),
                           ("like a street thug",)),
}

# Subjects without a style (the HumanML3D corpus mostly says "a person" or "someone").
BANDAI_SUBJECTS = ("a person", "someone", "a man", "a woman", "the character", "a human",
                   "the person")
_STYLED_SUBJECT_NOUNS = ("person", "man", "woman", "character")
BANDAI_PARAPHRASES = 6


def _styled_subject(words: StyleWords, rng: random.Random) -> str:
  """A subject that carries the style: "an elderly man", "an old woman", "a calm person"."""
  choices = [f"{a} {n}" for a in words.adjectives if a for n in _STYLED_SUBJECT_NOUNS]
  choices += list(words.nouns)
  return rng.choice(choices) if choices else rng.choice(BANDAI_SUBJECTS)


def bandai_paraphrases(stem: str, count: int = BANDAI_PARAPHRASES) -> list[str]:
  """`count` (default 6) distinct HumanML3D-like captions of a Bandai clip, deterministic per stem.

  Each caption names the content with one of its verb forms (`BANDAI_VERBS`) and the style with a
  styled subject ("an elderly man walks forward."), an adverbial ("someone is walking slowly and
  stiffly."), a comparison ("a person walks like an old person.") or both; the choices are drawn
  from a generator seeded by the file name, so a clip keeps its captions on every import.
  """
  clip = parse_bandai_stem(stem)
  verbs = BANDAI_VERBS[clip.content]
  words = BANDAI_STYLE_WORDS[clip.style]
  rng = random.Random(int.from_bytes(hashlib.sha1(stem.encode("utf-8")).digest()[:8], "big"))
  manner = list(words.adverbs) + list(words.likes)
  templates = [
      lambda: f"{_styled_subject(words, rng)} {rng.choice(verbs)}.",
      lambda: f"{rng.choice(BANDAI_SUBJECTS)} {rng.choice(verbs)} {rng.choice(manner)}.",
      lambda: f"{_styled_subject(words, rng)} {rng.choice(verbs)} {rng.choice(words.adverbs)}.",
      lambda: f"{rng.choice(BANDAI_SUBJECTS)} {rng.choice(verbs)} {rng.choice(words.adverbs)}.",
      lambda: f"{rng.choice(BANDAI_SUBJECTS)} {rng.choice(verbs)} {rng.choice(manner)}.",
      lambda: f"{_styled_subject(words, rng)} {rng.choice(verbs)}.",
  ]
  captions: list[str] = []
  for attempt in range(20 * count):
    caption = templates[attempt % len(templates)]()
    if caption not in captions:
      captions.append(caption)
    if len(captions) == count:
      break
  return captions


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
    "bandai_paraphrases": bandai_paraphrases,
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
