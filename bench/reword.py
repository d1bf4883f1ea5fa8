"""A reworded question, as a person rewords one: the disguise only the semantic check can see.

Deterministic for a seeded ``random.Random``: the context's clauses are reordered ("If X, Y." ->
"Y if X."; "X, and then Y." -> "X. Then Y."; two sentences swapped; the question asked first),
the question's opening rephrased ("How many" -> "What number of"), about 3 in 5 of the words
found in a list of common ones swapped for a synonym, and filler ("just", "really") dropped.
Numbers and names are kept: no entry of the lists holds a digit or a proper noun.
"""

from __future__ import annotations

import random
import re

# Word swaps a person rewording a math question makes; numbers and names are never touched
# (no entry holds a digit or a proper noun). Keys are lower case; a capitalized word keeps its
# capital.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "bought": ("purchased", "got"), "buys": ("purchases", "gets"), "buy": ("purchase", "get"),
    "sells": ("sells off", "trades"), "sold": ("traded", "sold off"), "sell": ("trade",),
    "earns": ("makes", "brings in"), "earned": ("made", "brought in"), "earn": ("make",),
    "costs": ("is priced at", "runs"), "cost": ("price",), "price": ("cost",),
    "spends": ("pays out", "uses up"), "spent": ("paid out", "used up"), "spend": ("pay out",),
    "pays": ("spends",), "paid": ("spent",), "wants": ("would like", "hopes"),
    "needs": ("requires", "has to have"), "need": ("require",), "gets": ("receives",),
    "got": ("received",), "gives": ("hands",), "gave": ("handed",), "give": ("hand",),
    "received": ("got",), "receives": ("gets",), "takes": ("needs",), "took": ("needed",),
    "starts": ("begins",), "started": ("began",), "finished": ("completed",),
    "finishes": ("completes",), "decides": ("chooses",), "decided": ("chose",),
    "collected": ("gathered",), "collects": ("gathers",), "makes": ("produces", "creates"),
    "made": ("produced",), "uses": ("utilizes",), "used": ("utilized",), "walks": ("strolls",),
    "runs": ("jogs",), "reads": ("goes through",), "eats": ("consumes",), "ate": ("consumed",),
    "plans": ("intends",), "planted": ("sowed",), "picked": ("harvested",), "owns": ("has",),
    "friends": ("pals", "buddies"), "friend": ("pal", "buddy"), "store": ("shop",),
    "shop": ("store",), "money": ("cash",), "children": ("kids",), "kids": ("children",),
    "people": ("individuals", "persons"),
    "altogether": ("in all", "combined"), "remaining": ("left over",),
    "rest": ("remainder",), "large": ("big",), "big": ("large",), "small": ("little",),
    "every": ("each",), "twice": ("two times",),
    "amount": ("quantity", "sum"), "number": ("count", "quantity"), "car": ("vehicle",),
    "house": ("home",), "job": ("work",), "daily": ("each day", "per day"),
    "weekly": ("each week",), "monthly": ("each month",), "per": ("a", "each"),
    "find": ("determine", "work out"), "calculate": ("work out", "compute"),
    "if": ("suppose", "assuming"), "then": ("after that", "next"), "first": ("initially",),
    "after": ("following",), "before": ("prior to",), "later": ("afterwards",),
    "also": ("too",), "only": ("just",),
    "went": ("headed",), "goes": ("heads",), "go": ("head",), "help": ("assist",),
    "tickets": ("passes",), "book": ("volume",), "books": ("volumes",), "shirts": ("tops",),
    "dollars": ("bucks",), "profit": ("gain",), "half": ("one half",), "put": ("placed",),
    "puts": ("places",), "left": ("remaining",), "more": ("additional", "extra"),
    "fewer": ("less",), "less": ("fewer",), "bakes": ("makes",), "baked": ("made",),
    "pieces": ("bits",), "boxes": ("cartons",), "bag": ("sack",), "bags": ("sacks",),
    "students": ("pupils",), "student": ("pupil",), "class": ("classroom",),
    "school": ("campus",), "trip": ("journey",), "drives": ("travels",), "drove": ("travelled",),
}  # fmt: skip
QUESTION_OPENERS = [
    (r"^How much money\b", ("What amount of money", "How many dollars")),
    (r"^How many\b", ("What number of",)),
    (r"^How much(?= (does|did|do|is|was|will|would|can|should)\b)", ("What amount",)),
    (r"^How long\b", ("How much time",)),
    (r"^What is\b", ("What's", "Find")),
    (r"^Find\b", ("Determine", "Work out")),
    (r"^Calculate\b", ("Work out", "Compute")),
]
DROPPED = {"just", "really", "also", "actually", "very", "exactly", "altogether", "still"}
ASK_FIRST = ["{q} Here is the situation: {ctx}", "{q} Context: {ctx}", "Tell me: {q} {ctx}"]


WORD = re.compile(r"[A-Za-z]+")
SUBJECTS = {"he", "she", "they", "it", "how", "what", "the", "there", "his", "her", "their",
            "we", "you", "a", "an", "each", "every", "this", "that", "these", "those"}  # fmt: skip
LEADING = re.compile(r"^(If|When|After|Before|Since|While) ([^,]{6,}), (.{6,}?)([.?!])$")


def _cased(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def _swap_words(text: str, rng: random.Random, rate: float) -> str:
    """Swap words for synonyms and drop filler words; numbers, names, punctuation stay."""

    def swap(m: re.Match[str]) -> str:
        word = m.group(0)
        low = word.lower()
        if low in DROPPED and rng.random() < 0.8:
            return ""
        if low in SYNONYMS and rng.random() < rate:
            return _cased(rng.choice(SYNONYMS[low]), word)
        return word

    text = WORD.sub(swap, text)
    text = re.sub(r" {2,}", " ", re.sub(r" +([,.?!;:])", r"\1", text)).strip()
    return text[:1].upper() + text[1:]


def _uncap(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first.lower() in SUBJECTS else text


def _move_leading_clause(sentence: str) -> str:
    """ "If X, Y?" -> "Y if X?"."""
    m = LEADING.match(sentence)
    if m is None:
        return sentence
    conj, clause, main, end = m.groups()
    main = main[:1].upper() + main[1:]
    return f"{main} {conj.lower()} {_uncap(clause)}{end}"


def _split_and(sentence: str) -> str:
    """ "X, and then Y." -> "X. Then Y."; "X, and Y." -> "X. Y."."""
    m = re.match(r"^(.{12,}?), and (then )?(.{6,})$", sentence)
    if m is None:
        return sentence
    head, then, tail = m.groups()
    tail = _uncap(tail)
    return f"{head}. {'Then ' + tail if then else tail[:1].upper() + tail[1:]}"


def reword(prompt: str, rng: random.Random) -> str:
    """``prompt`` reworded the way a person would: clauses reordered, synonyms swapped, the
    question's opening rephrased, filler dropped; every number and name kept."""
    sentences = re.split(r"(?<=[.?!])\s+", " ".join(prompt.split()))
    question = sentences.pop() if len(sentences) > 1 and sentences[-1].endswith("?") else ""
    for pattern, choices in QUESTION_OPENERS:
        if question and re.match(pattern, question) and rng.random() < 0.8:
            question = re.sub(pattern, rng.choice(choices), question)
            break
    context = [_move_leading_clause(s) if rng.random() < 0.7 else s for s in sentences]
    context = [_split_and(s) if rng.random() < 0.5 else s for s in context]
    if len(context) > 2 and rng.random() < 0.5:
        k = rng.randrange(len(context) - 1)
        context[k], context[k + 1] = context[k + 1], context[k]
    ctx = " ".join(context)
    if question and ctx and rng.random() < 0.5:
        text = rng.choice(ASK_FIRST).format(q=question, ctx=ctx)
    else:
        text = f"{ctx} {question}".strip()
    return _swap_words(text, rng, 0.6)
