"""Offline NLP for unstructured's text-type heuristics (is this line a heading or prose?).

unstructured 0.27 downloads spaCy's en_core_web_sm on first use; offline that fails and PDF partitioning
then returns no elements. `install_offline_nlp` replaces its loader: the installed model when there is one,
else a small built-in pipeline (blank English + sentencizer + a heuristic verb tagger), built once.
"""

from __future__ import annotations

import functools
import logging

import spacy
import unstructured.nlp.tokenize as _unstructured_nlp
from spacy.language import Language
from spacy.tokens import Doc, Span

logger = logging.getLogger(__name__)


_SPACY_MODEL = "en_core_web_sm"
# The components unstructured itself leaves out when it loads the model.
_SPACY_EXCLUDE = ["ner", "lemmatizer", "attribute_ruler"]
_FALLBACK_TAGGER = "ragkit_heuristic_tagger"


def _words(text: str) -> frozenset[str]:
    """A word list written as running text, so that it stays readable in the source."""
    return frozenset(text.split())


# unstructured only asks "does this short line contain a verb?" (prose) or "no verb?" (heading), so
# the fallback tags verbs and little else. Lemmas are common English and technical-writing verbs;
# inflected forms are derived from them. Most of these are nouns too ("use", "test", "results"), so a
# form only counts as a verb with a cue: see `_choose_tag`.
_VERB_LEMMAS = _words(
    """
    accept access achieve act add adjust admit affect agree aim allow alter analyse analyze answer
    appear apply approach argue arise arrange arrive ask assess assign assume attach attempt attend
    avoid base bear beat become begin believe belong benefit block boost borrow break bring build buy
    calculate call cancel capture care carry catch cause change charge check choose claim classify
    clean clear click close collect combine come commit compare compile complete compress compute
    concern conclude configure confirm connect consider consist contain continue contribute control
    convert copy correct cost count cover crash create cross cut deal debug decide declare decode
    decrease define delete deliver demonstrate deny depend deploy derive describe design detect
    determine develop die differ disable discover discuss display distribute divide do download draw
    drink drive drop eat embed emerge enable encode encourage end enjoy ensure enter establish estimate
    evaluate examine exceed exist expand expect explain explore export express extend extract fail fall
    feel fetch fight fill filter find finish fit fix fly flow focus follow force forget form generate
    get give go grow guarantee handle hang happen hate have hear help hide hit hold hope identify
    ignore implement imply import improve include increase indicate install intend introduce invoke
    involve issue join jump keep kill know lack last launch lay lead learn leave lend let lie like
    limit link list listen live load locate log look lose love maintain make manage map match matter
    mean measure meet merge migrate mind miss modify monitor move need note notice obtain occur offer
    open operate order organize output own parse pass pay perform persist pick place plan play point
    prefer prepare present preserve prevent print process produce provide publish pull push put query
    raise reach read realize receive recognize recommend record reduce refer reflect register reject
    relate release rely remain remember remove render repeat replace reply report represent request
    require resolve respond rest restart restore result retain retrieve return reuse review ride rise
    run save say scale search see seek seem select sell send serve set shake share shift shoot show
    shut sign sing sit skip sleep sort speak specify spend split spread stand start state stay steal
    stick stop store strike submit succeed suggest supply support suppose swim take talk target teach
    tear tell tend test thank think throw track train transfer transform translate treat trigger try
    turn understand update upgrade upload use validate vary verify view visit wait wake walk want warn
    wash watch wear win wish work worry wrap write yield
    batch cache host index label rank score ship stream tag
    """
)
# Irregular past tense and participle forms; a form listed twice is both.
_IRREGULAR_PAST = _words(
    """
    became began broke brought built bought caught chose came cost cut dealt did drew drank drove ate
    fell felt fought found flew forgot got gave went grew hung had heard hid held hit kept knew laid
    led left lent let lay lost made meant met paid put read rode rose ran said saw sought sold sent
    set shook shot showed shut sang sat slept spoke spent split spread stood stole stuck struck swam
    took taught tore told thought threw understood woke wore won wrote
    """
)
_IRREGULAR_PARTICIPLE = _words(
    """
    become begun broken brought built bought caught chosen come cost cut dealt done drawn drunk driven
    eaten fallen felt fought found flown forgotten got gotten given gone grown hung had heard hidden
    held hit kept known laid led left lent let lain lost made meant met paid put read ridden risen run
    said seen sought sold sent set shaken shot shown shut sung sat slept spoken spent split spread
    stood stolen stuck struck swum taken taught torn told thought thrown understood woken worn won
    written
    """
)
# Auxiliaries are verbs wherever they stand, and so are a few past forms that are nothing else.
_AUXILIARY_TAGS = {
    **dict.fromkeys(("am", "are", "'m", "'re", "have", "'ve"), "VBP"),
    **dict.fromkeys(("is", "has", "does"), "VBZ"),
    **dict.fromkeys(("was", "were", "had", "did"), "VBD"),
    "be": "VB",
    "been": "VBN",
}
_BE = frozenset({"am", "is", "are", "was", "were", "be", "been", "'m", "'re"})
_HAVE = frozenset({"has", "have", "had", "'ve"})
_DO = frozenset({"does", "did"})
_ALWAYS_VERBS = frozenset(_AUXILIARY_TAGS) | {"went", "took", "gave", "came", "became", "began", "knew"}
_MODALS = frozenset(
    {"can", "ca", "could", "will", "wo", "would", "shall", "should", "may", "might", "must", "'ll", "'d"}
)
_SUBJECTS = frozenset(
    {"i", "we", "you", "they", "he", "she", "it", "who", "which", "that", "this", "these", "those", "there"}
)
# Skipped when looking back for a cue: "it also stores", "does not work".
_ADVERBS = frozenset(
    {"not", "n't", "also", "always", "often", "never", "usually", "then", "only", "just", "still", "now"}
)
_NOT_GERUNDS = _words(
    """
    thing nothing something anything everything during morning evening string ceiling spring sibling
    """
)
_NOT_PARTICIPLES = frozenset({"indeed", "hundred", "kindred", "sacred", "naked", "wicked"})
_SENTENCE_END = frozenset({".", "!", "?"})
_CLOSING_PUNCT = frozenset({'"', "'", ")", "]", "\u201d", "\u2019"})
_FINITE = ("VBZ", "VBD", "VBP")


def _verb_tags(word: str) -> tuple[str, ...]:
    """The Penn verb tags `word` (lower case) could carry out of context; empty when it is no verb.

    Regular -ed and -ing forms count whatever their stem, so unknown verbs ("vectorized") are found.
    """
    if word in _AUXILIARY_TAGS:
        return (_AUXILIARY_TAGS[word],)
    tags: list[str] = []
    if word in _VERB_LEMMAS:
        tags += ["VB", "VBP"]
    if word in _IRREGULAR_PAST:
        tags.append("VBD")
    if word in _IRREGULAR_PARTICIPLE:
        tags.append("VBN")
    if word.endswith("s") and (
        word[:-1] in _VERB_LEMMAS
        or (word.endswith("es") and word[:-2] in _VERB_LEMMAS)
        or (word.endswith("ies") and word[:-3] + "y" in _VERB_LEMMAS)
        or word.endswith(("izes", "ifies"))
    ):
        tags.append("VBZ")
    if word.endswith("ed") and len(word) > 4 and word not in _NOT_PARTICIPLES:
        tags += ["VBD", "VBN"]
    if word.endswith("ing") and len(word) > 4 and word not in _NOT_GERUNDS:
        tags.append("VBG")
    if word.endswith(("ize", "ify")) and len(word) > 5:
        tags += ["VB", "VBP"]
    return tuple(dict.fromkeys(tags))


def _choose_tag(word: str, tags: tuple[str, ...], cue: str, in_sentence: bool) -> str:
    """Pick the verb reading of an ambiguous word only where English grammar points to one.

    `cue` is the previous word (adverbs skipped). A line that ends like a sentence is prose, so every
    possible verb counts there; in a bare line ("Test results", "Getting started") a word is a verb
    only after a subject, a modal or "to", or an auxiliary: that keeps headings headings.
    """
    if not tags:
        return "NN"
    if word in _ALWAYS_VERBS or in_sentence:
        return tags[0]
    wanted: tuple[str, ...] = ()
    if cue in _MODALS or cue in _DO or cue == "to":
        wanted = ("VB",)
    elif cue in _SUBJECTS:
        wanted = _FINITE
    elif cue in _BE:
        wanted = ("VBG", "VBN")
    elif cue in _HAVE:
        wanted = ("VBN",)
    return next((tag for tag in tags if tag in wanted), "NN")


def _ends_as_sentence(sentence: Span) -> bool:
    """True when the span's last token, closing quotes and brackets aside, is . ! or ?."""
    for token in reversed(sentence):
        if token.text not in _CLOSING_PUNCT:
            return token.text in _SENTENCE_END
    return False


def _tag_verbs(doc: Doc) -> Doc:
    """Set `token.tag_` to a Penn verb tag for verbs, MD/CD/./NN otherwise (only verbs are read)."""
    for sentence in doc.sents:
        in_sentence = _ends_as_sentence(sentence)
        cue = ""
        for token in sentence:
            word = token.lower_
            if token.is_punct:
                token.tag_ = "."
            elif token.like_num:
                token.tag_ = "CD"
            elif word in _MODALS:
                token.tag_ = "MD"
            else:
                token.tag_ = _choose_tag(word, _verb_tags(word), cue, in_sentence)
            if word not in _ADVERBS and not (word.endswith("ly") and word not in _VERB_LEMMAS):
                cue = word
    return doc


if not Language.has_factory(_FALLBACK_TAGGER):
    Language.component(_FALLBACK_TAGGER, func=_tag_verbs)


def _build_fallback_nlp() -> Language:
    """A pipeline with the three things unstructured reads: tokens, sentences and verb tags."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe(_FALLBACK_TAGGER)
    return nlp


@functools.lru_cache(maxsize=1)
def _load_nlp() -> Language:
    """The installed spaCy model if there is one, else the fallback; never a download. Once per process."""
    try:
        return spacy.load(_SPACY_MODEL, exclude=_SPACY_EXCLUDE)
    except OSError:
        logger.debug("spaCy model %s is not installed; using ragkit's offline fallback", _SPACY_MODEL)
    return _build_fallback_nlp()


def install_offline_nlp() -> None:
    """Make unstructured get its spaCy pipeline from `_load_nlp` instead of its download-on-miss loader.

    unstructured.nlp.tokenize looks `_get_nlp` up as a module global on every call, so rebinding it
    covers word_tokenize, pos_tag and sent_tokenize (and their caches) at once.
    """
    if not callable(getattr(_unstructured_nlp, "_get_nlp", None)):
        raise ImportError(
            "unstructured.nlp.tokenize._get_nlp is missing: this unstructured version loads its NLP "
            "model differently, and ingest.parse cannot keep it from downloading one"
        )
    _unstructured_nlp._get_nlp = _load_nlp


install_offline_nlp()


def warm_up() -> None:
    """Build the pipeline now, so that a worker's first document does not pay for it."""
    _load_nlp()


def nlp_backend() -> str:
    """Which pipeline unstructured's heading/prose heuristics run on: the spaCy model's name or "fallback"."""
    nlp = _load_nlp()
    return "fallback" if _FALLBACK_TAGGER in nlp.pipe_names else f"{nlp.lang}_{nlp.meta['name']}"
