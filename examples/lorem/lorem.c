/* SPDX-License-Identifier: MIT */
/* lorem: the generator. See lorem.h for the rules and limits. */
#include "lorem/lorem.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

/* Our own Latin-ish vocabulary: everyday Latin nouns and verbs, a few made
 * up, every length from 1 to 14 letters present. */
static const char *const WORDS[] = {
    "a",
    "e",
    "o",
    "i",
    "ab",
    "ad",
    "et",
    "in",
    "ut",
    "ne",
    "si",
    "vi",
    "re",
    "de",
    "nec",
    "sed",
    "per",
    "cum",
    "rex",
    "lux",
    "pax",
    "vox",
    "dux",
    "sol",
    "mel",
    "ver",
    "aqua",
    "mare",
    "vita",
    "nova",
    "ludo",
    "cano",
    "domo",
    "rosa",
    "luna",
    "fero",
    "iter",
    "opus",
    "sine",
    "tibi",
    "nunc",
    "bene",
    "flos",
    "ovis",
    "equi",
    "ursa",
    "terra",
    "silva",
    "ignis",
    "nubes",
    "lapis",
    "mensa",
    "porta",
    "umbra",
    "calor",
    "amnis",
    "aurum",
    "vinum",
    "panis",
    "mundi",
    "cella",
    "fabri",
    "nauta",
    "piper",
    "ventus",
    "tempus",
    "flumen",
    "portus",
    "caelum",
    "fortis",
    "animus",
    "corpus",
    "lumine",
    "semper",
    "hortus",
    "mercor",
    "oculus",
    "pulvis",
    "sermon",
    "viator",
    "fluvius",
    "navigia",
    "ambulat",
    "cantare",
    "ferrugo",
    "lucerna",
    "sagitta",
    "vestigo",
    "vespera",
    "castrum",
    "fabrica",
    "horreum",
    "nemoris",
    "pastori",
    "agricola",
    "fenestra",
    "imperium",
    "cogitare",
    "militare",
    "arbustum",
    "nebulosa",
    "tempesta",
    "mercator",
    "lapidosa",
    "frumenti",
    "viridans",
    "aedificia",
    "tempestas",
    "civitates",
    "navigator",
    "fortitudo",
    "libertate",
    "pastorale",
    "aurifices",
    "montanina",
    "aedificium",
    "memorandum",
    "imperatore",
    "peregrinus",
    "meridianus",
    "consuetudo",
    "fluctuosus",
    "horologium",
    "magnificata",
    "peregrinari",
    "fluviatilis",
    "navigationi",
    "architectus",
    "circumspecto",
    "ambulatorium",
    "praecipitans",
    "constellatio",
    "perambulatio",
    "magnificentia",
    "circumvolante",
    "superfluitate",
    "inextricabile",
    "circumnavigare",
    "incomprehensus",
    "transfigurator",
    "architectonica",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

const char *const *lorem_words(size_t *count) {
  if (count) *count = NWORDS;
  return WORDS;
}

/* The list is sorted by length, so the words of one length are a slice.
 * The slices are computed once (pthread_once): the table is constant after
 * that, so generation stays reentrant and lock-free. */
static size_t slice_first[LOREM_WORD_MAX + 2];
static pthread_once_t slice_once = PTHREAD_ONCE_INIT;

static void slice_init(void) {
  size_t i = 0;
  for (int n = 0; n <= LOREM_WORD_MAX + 1; n++) {
    while (i < NWORDS && (int)strlen(WORDS[i]) < n) i++;
    slice_first[n] = i;
  }
}

static int slice(int n, size_t *first, size_t *count) {
  pthread_once(&slice_once, slice_init);
  *first = slice_first[n];
  *count = (n < LOREM_WORD_MAX + 1 ? slice_first[n + 1] : NWORDS) - slice_first[n];
  return *count > 0;
}

void lorem_seed(lorem_rng *r, uint64_t seed) {
  /* splitmix64 turns any seed (0 included) into a good non-zero state */
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  r->s = z ? z : 0x2545f4914f6cdd1dULL;
}

uint64_t lorem_next(lorem_rng *r) { /* xorshift64* */
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t below(lorem_rng *r, uint64_t n) { /* n > 0 */
  return (uint64_t)(((unsigned __int128)lorem_next(r) * n) >> 64);
}

int lorem_count(lorem_rng *r, int min, int max) {
  if (min == max) return min;
  if (min > max) {
    int t = min;
    min = max;
    max = t;
  }
  return min + (int)below(r, (uint64_t)((int64_t)max - min));
}

int lorem_type_parse(const char *name, size_t len, lorem_type *out) {
  static const char *const names[] = {"word", "sentence", "paragraph"};
  for (int i = 0; i < 3; i++) {
    if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0) {
      *out = (lorem_type)i;
      return 0;
    }
  }
  return -1;
}

const char *lorem_type_name(lorem_type t) {
  switch (t) {
  case LOREM_WORD: return "word";
  case LOREM_SENTENCE: return "sentence";
  case LOREM_PARAGRAPH: return "paragraph";
  }
  return "?";
}

int lorem_limit(lorem_type t) {
  switch (t) {
  case LOREM_WORD: return LOREM_WORD_MAX;
  case LOREM_SENTENCE: return LOREM_SENTENCE_MAX;
  case LOREM_PARAGRAPH: return LOREM_PARAGRAPH_MAX;
  }
  return 0;
}

/* Output cursor: writes what fits, remembers that something did not. */
struct out {
  char *p;
  size_t len, cap;
  int full;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->full) return;
  if (n >= o->cap - o->len) {
    n = o->cap - o->len - 1;
    o->full = 1;
  }
  memcpy(o->p + o->len, s, n);
  o->len += n;
  o->p[o->len] = '\0';
}

static void word(lorem_rng *r, int len, struct out *o, int capital) {
  if (len < 1) len = 1;
  if (len > LOREM_WORD_MAX) len = LOREM_WORD_MAX;
  size_t first, count;
  while (!slice(len, &first, &count)) len--; /* every length exists; defensive */
  const char *w = WORDS[first + below(r, count)];
  size_t at = o->len;
  put(o, w, strlen(w));
  if (capital && !o->full && o->p[at] >= 'a' && o->p[at] <= 'z') o->p[at] -= 'a' - 'A';
}

static void sentence(lorem_rng *r, int words, struct out *o) {
  if (words < 1) words = 1;
  for (int i = 0; i < words; i++) {
    if (i) put(o, " ", 1);
    /* short words mostly, as in prose: lengths 1..10, sometimes longer */
    int len = 1 + (int)below(r, below(r, 8) == 0 ? LOREM_WORD_MAX : 10);
    word(r, len, o, i == 0);
    if (i + 1 < words && i > 1 && below(r, 9) == 0) put(o, ",", 1);
  }
  put(o, ".", 1);
}

int lorem_generate(lorem_rng *r, lorem_type t, int min, int max, char *buf, size_t cap) {
  int lim = lorem_limit(t);
  if (min < 0 || max < 0 || min > lim || max > lim || !buf || !cap) return -1;
  struct out o = {buf, 0, cap, 0};
  buf[0] = '\0';
  int n = lorem_count(r, min, max);
  switch (t) {
  case LOREM_WORD: word(r, n, &o, 0); break;
  case LOREM_SENTENCE: sentence(r, n, &o); break;
  case LOREM_PARAGRAPH:
    if (n < 1) n = 1;
    for (int i = 0; i < n; i++) {
      if (i) put(&o, " ", 1);
      sentence(
          r, LOREM_PARA_WORDS_MIN + (int)below(r, LOREM_PARA_WORDS_MAX - LOREM_PARA_WORDS_MIN + 1),
          &o);
    }
    break;
  }
  return o.full ? -2 : (int)o.len;
}
