"""Words and templates of the semi-synthetic change captions (see rsir.data.synth).

Captions name what appeared (the donor scene's class), what disappeared (the before scene's class),
where (one of the pasted regions) and the scene around it; no-change captions name the scene and the
photometric difference. Several synonyms per slot keep identical captions across pairs rare.
"""

from __future__ import annotations

import random

# class -> (things that can appear or disappear, names of the whole scene); UC Merced's 21 classes.
CLASS_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "agricultural": (("farmland", "crop fields", "cultivated fields"), ("farmland", "agricultural area", "fields")),
    "airplane": (("an airplane", "a parked aircraft", "a plane"), ("airport apron", "airfield", "airport")),
    "baseballdiamond": (
        ("a baseball diamond", "a ball field", "a baseball field"),
        ("sports ground", "park", "ballpark"),
    ),
    "beach": (("a beach", "sandy shore", "a strip of sand"), ("coast", "beach", "shoreline")),
    "buildings": (
        ("buildings", "large buildings", "commercial buildings"),
        ("built-up area", "city block", "downtown area"),
    ),
    "chaparral": (("chaparral", "scrubland", "shrubs"), ("scrubland", "chaparral", "bushland")),
    "denseresidential": (
        ("dense housing", "densely packed houses", "a dense block of homes"),
        ("dense neighbourhood", "crowded residential area", "housing estate"),
    ),
    "forest": (("forest", "dense trees", "woodland"), ("forest", "woodland", "wooded area")),
    "freeway": (("a freeway", "a highway", "a multi-lane road"), ("highway corridor", "freeway area", "road corridor")),
    "golfcourse": (("a golf course", "golf greens", "fairways"), ("golf course", "golf resort", "green course")),
    "harbor": (("a harbor", "moored boats", "docks with boats"), ("harbor", "marina", "port")),
    "intersection": (
        ("an intersection", "a road crossing", "crossing streets"),
        ("street junction", "crossroads", "road network"),
    ),
    "mediumresidential": (
        ("houses", "a residential area", "suburban homes"),
        ("suburb", "residential area", "neighbourhood"),
    ),
    "mobilehomepark": (
        ("a mobile home park", "trailer homes", "rows of mobile homes"),
        ("trailer park", "mobile home park", "caravan site"),
    ),
    "overpass": (
        ("an overpass", "a highway interchange", "elevated roads"),
        ("interchange", "overpass area", "road junction"),
    ),
    "parkinglot": (("a parking lot", "parked cars", "a car park"), ("parking area", "parking lot", "car park")),
    "river": (("a river", "flowing water", "a riverbed"), ("river valley", "riverside", "river area")),
    "runway": (("a runway", "an airstrip", "runway pavement"), ("airstrip", "runway area", "airfield")),
    "sparseresidential": (
        ("scattered houses", "sparse housing", "detached homes"),
        ("rural settlement", "sparse neighbourhood", "village"),
    ),
    "storagetanks": (("storage tanks", "oil tanks", "round tanks"), ("tank farm", "industrial site", "storage depot")),
    "tenniscourt": (
        ("a tennis court", "tennis courts", "sports courts"),
        ("sports complex", "tennis club", "recreation area"),
    ),
}

# region -> phrases; every change caption names one of them.
REGION_WORDS: dict[str, tuple[str, ...]] = {
    "upper-left": ("the upper left", "the top left corner", "the north-west part", "the upper-left quarter"),
    "upper-right": ("the upper right", "the top right corner", "the north-east part", "the upper-right quarter"),
    "lower-left": ("the lower left", "the bottom left corner", "the south-west part", "the lower-left quarter"),
    "lower-right": ("the lower right", "the bottom right corner", "the south-east part", "the lower-right quarter"),
    "top": ("the top half", "the upper part", "the northern half", "the upper half"),
    "bottom": ("the bottom half", "the lower part", "the southern half", "the lower half"),
    "left": ("the left half", "the left side", "the western half", "the left part"),
    "right": ("the right half", "the right side", "the eastern half", "the right part"),
    "centre": ("the centre", "the middle", "the central part", "the centre area"),
}

CHANGE_TEMPLATES = (
    "{new_new} appeared in {region} of the {scene}",
    "{new} replaced {old} in {region} of the {scene}",
    "{old} in {region} of the {scene} has been replaced by {new}",
    "in {region} of the {scene}, {old} gave way to {new}",
    "{new} now covers {region} of the {scene}",
    "{old} disappeared from {region} of the {scene} and {new} took its place",
    "{region} of the {scene} changed: {new} where {old} used to be",
    "there is {new_new} in {region} of the {scene} that was not there before",
    "{region} of the {scene} now shows {new} instead of {old}",
    "{old} was removed from {region} of the {scene}, now there is {new}",
    "compared with before, {region} contains {new} rather than {old}",
    "{new_new} took over {region} of the {scene}, replacing {old}",
)

NO_CHANGE_TEMPLATES = (
    "nothing has changed in the {scene}, although {photo}",
    "the {scene} looks the same, only {photo}",
    "no change in the {scene} and its {thing}, except that {photo}",
    "the two images of the {scene} are the same except that {photo}",
    "the {scene} with its {thing} is unchanged; {photo}",
    "there is no change to the {thing} of the {scene}, but {photo}",
    "the {scene} remains the same while {photo}",
    "no structural change in the {scene}, but {photo}",
    "the {thing} in the {scene} did not change; {photo}",
    "nothing appeared or disappeared in the {scene}; {photo}",
)

# {deg} is filled from the jitter's strength (DEGREE_WORDS), so the words stay grounded in the pixels.
PHOTO_WORDS: dict[str, tuple[str, ...]] = {
    "brighter": (
        "the after image is {deg} brighter",
        "the lighting got {deg} brighter",
        "the second image is {deg} lighter",
        "the illumination is {deg} stronger",
    ),
    "darker": (
        "the after image is {deg} darker",
        "the lighting got {deg} darker",
        "the second image is {deg} dimmer",
        "the illumination is {deg} weaker",
    ),
    "more-contrast": (
        "the contrast is {deg} stronger",
        "the after image has {deg} more contrast",
        "colours look {deg} harsher",
        "the second image is {deg} more contrasted",
    ),
    "less-contrast": (
        "the contrast is {deg} weaker",
        "the after image looks {deg} hazier",
        "colours look {deg} flatter",
        "the second image is {deg} washed out",
    ),
    "hue": (
        "the colours are {deg} tinted",
        "the hue has {deg} shifted",
        "the colour balance is {deg} off",
        "the second image is {deg} tinted",
    ),
}
DEGREE_WORDS = {"low": ("slightly", "a little", "somewhat"), "high": ("clearly", "markedly", "much")}


def class_words(label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if label in CLASS_WORDS:
        return CLASS_WORDS[label]
    words = label.replace("_", " ").replace("-", " ").strip() or "scene"
    return (words, f"some {words}"), (f"{words} area", f"{words} scene")


def with_new(noun: str) -> str:
    """'a plane' -> 'a new plane', 'an airstrip' -> 'a new airstrip', 'houses' -> 'new houses'."""
    for article in ("a ", "an "):
        if noun.startswith(article):
            return "a new " + noun[len(article) :]
    return "new " + noun


def _finish(text: str) -> str:
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + "."


def change_captions(rng: random.Random, old: str, new: str, region: str, n: int) -> list[str]:
    """``n`` distinct captions for a pair where ``new``-class content replaced ``region`` of an ``old`` scene."""
    old_nouns, scenes = class_words(old)
    new_nouns, _ = class_words(new)
    out: list[str] = []
    templates = rng.sample(CHANGE_TEMPLATES, k=len(CHANGE_TEMPLATES))
    for template in templates:
        noun = rng.choice(new_nouns)
        text = template.format(
            new=noun,
            new_new=with_new(noun),
            old=rng.choice(old_nouns),
            scene=rng.choice(scenes),
            region=rng.choice(REGION_WORDS[region]),
        )
        if (text := _finish(text)) not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


def _bare(noun: str) -> str:
    for article in ("a ", "an "):
        if noun.startswith(article):
            return noun[len(article) :]
    return noun


def no_change_captions(rng: random.Random, label: str, photo: str, n: int, degree: str = "low") -> list[str]:
    """``n`` distinct captions for a photometric-only pair; ``degree`` is "low" or "high"."""
    things, scenes = class_words(label)
    out: list[str] = []
    for template in rng.sample(NO_CHANGE_TEMPLATES, k=len(NO_CHANGE_TEMPLATES)):
        words = rng.choice(PHOTO_WORDS[photo]).format(deg=rng.choice(DEGREE_WORDS[degree]))
        text = _finish(template.format(scene=rng.choice(scenes), thing=_bare(rng.choice(things)), photo=words))
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out
