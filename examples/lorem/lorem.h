/* SPDX-License-Identifier: MIT */
/* lorem: a Latin-ish text generator (the service of go-kit's lorem example).
 *
 * Three kinds of text, each asked for with a count range [min, max):
 *  - word:      one word whose length (in letters) is drawn from the range;
 *  - sentence:  that many words, the first capitalised, a comma now and
 *               then, ending with '.';
 *  - paragraph: that many sentences of LOREM_PARA_WORDS_MIN to
 *               LOREM_PARA_WORDS_MAX words each, separated by one space.
 * The count rule (lorem_count): equal ends give that count; a reversed
 * range is swapped; otherwise the count is drawn from [min, max): max is
 * EXCLUSIVE, as in the original (golorem). A drawn count of 0 becomes 1.
 *
 * Limits: word lengths 1..LOREM_WORD_MAX (a length outside is clamped to
 * the nearest one the list has); counts (both ends) 0..LOREM_SENTENCE_MAX
 * words per sentence and 0..LOREM_PARAGRAPH_MAX sentences per paragraph;
 * lorem_generate() rejects a negative end or one over its type's limit.
 * Any output fits in LOREM_OUT_MAX bytes, NUL included.
 *
 * The generator has no global state: the PRNG state is passed in, so one
 * lorem_rng per thread makes it reentrant and a seed makes it reproducible.
 * The word list is our own. */
#ifndef LOREM_H
#define LOREM_H

#include <stddef.h>
#include <stdint.h>

#define LOREM_WORD_MAX 14       /* longest word, in letters */
#define LOREM_SENTENCE_MAX 1000 /* most words in a sentence */
#define LOREM_PARAGRAPH_MAX 100 /* most sentences in a paragraph */
#define LOREM_PARA_WORDS_MIN 4  /* words of a sentence inside a paragraph, */
#define LOREM_PARA_WORDS_MAX 16 /* from MIN to MAX inclusive */
/* Worst cases: 1000 words of 14 letters + comma + space, and 100 sentences
 * of 16 such words: about 16 KB and 26 KB; round up. */
#define LOREM_OUT_MAX 32768

typedef enum lorem_type {
  LOREM_WORD = 0,
  LOREM_SENTENCE = 1,
  LOREM_PARAGRAPH = 2
} lorem_type;

/* PRNG state (xorshift64* seeded through splitmix64). Never share one
 * between threads without a lock. */
typedef struct lorem_rng {
  uint64_t s;
} lorem_rng;

void lorem_seed(lorem_rng *r, uint64_t seed);
uint64_t lorem_next(lorem_rng *r);

/* The count rule described above (no limits applied). */
int lorem_count(lorem_rng *r, int min, int max);

/* The type named `name` (case-insensitive "word", "sentence", "paragraph")
 * of `len` bytes; returns 0 and sets *out, or -1. */
int lorem_type_parse(const char *name, size_t len, lorem_type *out);
const char *lorem_type_name(lorem_type t);

/* The largest end a range of type `t` may have (14, 1000, 100). */
int lorem_limit(lorem_type t);

/* Generate text of type `t` into buf (cap bytes; LOREM_OUT_MAX always
 * suffices). Returns its length (NUL excluded), or -1 if an end is negative
 * or over lorem_limit(t), or -2 if cap is too small (buf then holds a
 * truncated, NUL-terminated text). */
int lorem_generate(lorem_rng *r, lorem_type t, int min, int max, char *buf, size_t cap);

/* For tests: the word list and its size. */
const char *const *lorem_words(size_t *count);

#endif
