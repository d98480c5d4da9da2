/* SPDX-License-Identifier: MIT */
/* The lorem generator: counts in range, equal ends, swapped ranges, seed
 * determinism, limits, and the word list. The example code is not part of
 * the library, so the test compiles it in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <string.h>

#include "lorem/lorem.c"

static char buf[LOREM_OUT_MAX];

static int words_in(const char *s) {
  int n = 0, in = 0;
  for (; *s; s++) {
    if (*s == ' ') in = 0;
    else if (!in) in = 1, n++;
  }
  return n;
}

static int sentences_in(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '.';
  return n;
}

static void test_word_list(void **st) {
  (void)st;
  size_t n;
  const char *const *w = lorem_words(&n);
  assert_true(n >= 100);
  int have[LOREM_WORD_MAX + 1] = {0};
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(w[i]);
    assert_true(len >= 1 && len <= LOREM_WORD_MAX);
    if (i) assert_true(strlen(w[i - 1]) <= len); /* sorted by length */
    for (size_t k = 0; k < len; k++) assert_true(islower((unsigned char)w[i][k]));
    have[len]++;
  }
  for (int l = 1; l <= LOREM_WORD_MAX; l++) assert_true(have[l] > 0);
}

static void test_count_rule(void **st) {
  (void)st;
  lorem_rng r;
  lorem_seed(&r, 7);
  int seen[10] = {0};
  for (int i = 0; i < 10000; i++) {
    int c = lorem_count(&r, 3, 8);
    assert_true(c >= 3 && c < 8); /* max exclusive */
    seen[c]++;
    assert_int_equal(lorem_count(&r, 5, 5), 5);
    c = lorem_count(&r, 8, 3); /* swapped */
    assert_true(c >= 3 && c < 8);
  }
  for (int c = 3; c < 8; c++) assert_true(seen[c] > 1500); /* roughly uniform */
  assert_int_equal(seen[8], 0);
}

static void test_word(void **st) {
  (void)st;
  lorem_rng r;
  lorem_seed(&r, 1);
  for (int i = 0; i < 2000; i++) {
    int n = lorem_generate(&r, LOREM_WORD, 4, 9, buf, sizeof buf);
    assert_true(n >= 4 && n < 9);
    assert_int_equal((size_t)n, strlen(buf));
  }
  assert_int_equal(lorem_generate(&r, LOREM_WORD, 6, 6, buf, sizeof buf), 6);
  assert_int_equal(lorem_generate(&r, LOREM_WORD, 14, 14, buf, sizeof buf), 14);
  assert_int_equal(lorem_generate(&r, LOREM_WORD, 0, 0, buf, sizeof buf), 1); /* 0 -> 1 */
  int n = lorem_generate(&r, LOREM_WORD, 9, 4, buf, sizeof buf);
  assert_true(n >= 4 && n < 9);
}

static void test_sentence(void **st) {
  (void)st;
  lorem_rng r;
  lorem_seed(&r, 2);
  for (int i = 0; i < 500; i++) {
    assert_true(lorem_generate(&r, LOREM_SENTENCE, 5, 20, buf, sizeof buf) > 0);
    int w = words_in(buf);
    assert_true(w >= 5 && w < 20);
    assert_true(isupper((unsigned char)buf[0]));
    assert_int_equal(buf[strlen(buf) - 1], '.');
    assert_int_equal(sentences_in(buf), 1);
  }
  lorem_generate(&r, LOREM_SENTENCE, 7, 7, buf, sizeof buf);
  assert_int_equal(words_in(buf), 7);
  lorem_generate(&r, LOREM_SENTENCE, 20, 5, buf, sizeof buf);
  assert_true(words_in(buf) >= 5 && words_in(buf) < 20);
}

static void test_paragraph(void **st) {
  (void)st;
  lorem_rng r;
  lorem_seed(&r, 3);
  for (int i = 0; i < 200; i++) {
    assert_true(lorem_generate(&r, LOREM_PARAGRAPH, 2, 6, buf, sizeof buf) > 0);
    int s = sentences_in(buf);
    assert_true(s >= 2 && s < 6);
  }
  lorem_generate(&r, LOREM_PARAGRAPH, 4, 4, buf, sizeof buf);
  assert_int_equal(sentences_in(buf), 4);
}

static void test_limits(void **st) {
  (void)st;
  lorem_rng r;
  lorem_seed(&r, 4);
  assert_int_equal(lorem_generate(&r, LOREM_WORD, 1, 15, buf, sizeof buf), -1);
  assert_int_equal(lorem_generate(&r, LOREM_WORD, -1, 3, buf, sizeof buf), -1);
  assert_int_equal(lorem_generate(&r, LOREM_SENTENCE, 1, 1001, buf, sizeof buf), -1);
  assert_int_equal(lorem_generate(&r, LOREM_PARAGRAPH, 101, 1, buf, sizeof buf), -1);
  /* the largest outputs fit in LOREM_OUT_MAX */
  for (int i = 0; i < 20; i++) {
    assert_true(lorem_generate(&r, LOREM_SENTENCE, 1000, 1000, buf, sizeof buf) > 0);
    assert_int_equal(words_in(buf), 1000);
    assert_true(lorem_generate(&r, LOREM_PARAGRAPH, 100, 100, buf, sizeof buf) > 0);
    assert_int_equal(sentences_in(buf), 100);
  }
  /* too small a buffer: -2, still NUL-terminated */
  char small[10];
  assert_int_equal(lorem_generate(&r, LOREM_SENTENCE, 50, 50, small, sizeof small), -2);
  assert_int_equal(strlen(small), 9);
}

static void test_seed_determinism(void **st) {
  (void)st;
  lorem_rng a, b, c;
  lorem_seed(&a, 42);
  lorem_seed(&b, 42);
  lorem_seed(&c, 43);
  char x[LOREM_OUT_MAX], y[LOREM_OUT_MAX];
  int differ = 0;
  for (int i = 0; i < 50; i++) {
    lorem_generate(&a, LOREM_PARAGRAPH, 1, 5, x, sizeof x);
    lorem_generate(&b, LOREM_PARAGRAPH, 1, 5, y, sizeof y);
    assert_string_equal(x, y);
    lorem_generate(&c, LOREM_PARAGRAPH, 1, 5, y, sizeof y);
    differ += strcmp(x, y) != 0;
  }
  assert_true(differ > 40);
}

static void test_type_parse(void **st) {
  (void)st;
  lorem_type t;
  assert_int_equal(lorem_type_parse("Word", 4, &t), 0);
  assert_int_equal(t, LOREM_WORD);
  assert_int_equal(lorem_type_parse("SENTENCE", 8, &t), 0);
  assert_int_equal(t, LOREM_SENTENCE);
  assert_int_equal(lorem_type_parse("paragraphs", 10, &t), -1);
  assert_int_equal(lorem_type_parse("par", 3, &t), -1);
  assert_string_equal(lorem_type_name(LOREM_PARAGRAPH), "paragraph");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_word_list),
      cmocka_unit_test(test_count_rule),
      cmocka_unit_test(test_word),
      cmocka_unit_test(test_sentence),
      cmocka_unit_test(test_paragraph),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_seed_determinism),
      cmocka_unit_test(test_type_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
