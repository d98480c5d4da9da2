/* SPDX-License-Identifier: MIT */
/* The health answer parser over the cases in tests/data/consul/<case>/:
 * body.json is an agent's answer, expect holds optional filter lines
 * ("tag=T", "all" for no passing filter) and then either "ok" followed by
 * the expected instances, sorted, one a line, or "err NAME detail-substring". */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "consul/consul_impl.h"
#include "core/instance_impl.h"
#include "kitd/error.h"
#include "kitd/instance.h"
#include "sd/instancer_impl.h"

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  size_t r;
  while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) b = realloc(b, cap *= 2);
  }
  fclose(f);
  if (b) b[n < cap ? n : cap - 1] = '\0';
  *len = n;
  return b;
}

static const char *data_dir(void) {
  const char *d = getenv("KITD_DATA");
  return d ? d : "tests/data/consul";
}

static int run_case(const char *name) {
  char path[512];
  size_t blen = 0, elen = 0;
  snprintf(path, sizeof path, "%s/%s/body.json", data_dir(), name);
  char *body = slurp(path, &blen);
  snprintf(path, sizeof path, "%s/%s/expect", data_dir(), name);
  char *expect = slurp(path, &elen);
  if (!body || !expect) {
    fprintf(stderr, "%s: missing body.json or expect\n", name);
    free(body);
    free(expect);
    return 1;
  }
  const char *tags[16];
  size_t ntags = 0;
  bool passing = true;
  char *save = NULL, *line = strtok_r(expect, "\n", &save);
  for (; line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "tag=", 4) == 0 && ntags < 16) tags[ntags++] = line + 4;
    else if (strcmp(line, "all") == 0) passing = false;
    else break;
  }
  int failed = 0;
  kitd_instance **set = NULL;
  size_t n = 0;
  char detail[256] = "";
  int rc = kitd__consul_parse_health(body, blen, tags, ntags, passing, NULL, &set, &n, detail,
                                     sizeof detail);
  if (line && strcmp(line, "ok") == 0) {
    if (rc) {
      fprintf(stderr, "%s: want ok, got %s: %s\n", name, kitd_err_name(rc), detail);
      failed = 1;
    } else {
      n = n ? kitd__instance_sort_unique(set, n) : 0;
      size_t i = 0;
      for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        if (i >= n || strcmp(kitd_instance_address(set[i]), line) != 0) {
          fprintf(stderr, "%s: instance %zu: want %s, got %s\n", name, i, line,
                  i < n ? kitd_instance_address(set[i]) : "(none)");
          failed = 1;
          break;
        }
      }
      if (!failed && i != n) {
        fprintf(stderr, "%s: want %zu instances, got %zu\n", name, i, n);
        failed = 1;
      }
      kitd_instance_list_free(set, n);
    }
  } else if (line && strncmp(line, "err ", 4) == 0) {
    char want[64] = "";
    const char *sub = strchr(line + 4, ' ');
    snprintf(want, sizeof want, "%.*s", (int)(sub ? sub - (line + 4) : (long)strlen(line + 4)),
             line + 4);
    if (!rc || strcmp(kitd_err_name(rc), want) != 0) {
      fprintf(stderr, "%s: want %s, got %s\n", name, want, rc ? kitd_err_name(rc) : "ok");
      if (!rc) kitd_instance_list_free(set, n);
      failed = 1;
    } else if (sub && !strstr(detail, sub + 1)) {
      fprintf(stderr, "%s: detail \"%s\" lacks \"%s\"\n", name, detail, sub + 1);
      failed = 1;
    }
  } else {
    fprintf(stderr, "%s: bad expect file\n", name);
    failed = 1;
  }
  if (!failed) fprintf(stderr, "ok %s\n", name);
  free(body);
  free(expect);
  return failed;
}

static void test_data_cases(void **state) {
  (void)state;
  DIR *d = opendir(data_dir());
  assert_non_null(d);
  struct dirent *de;
  int failures = 0, count = 0;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    failures += run_case(de->d_name);
    count++;
  }
  closedir(d);
  assert_true(count >= 20);
  assert_int_equal(failures, 0);
}

static void test_null_and_binary(void **state) {
  (void)state;
  kitd_instance **set = (kitd_instance **)0x1;
  size_t n = 77;
  char detail[64];
  assert_int_equal(
      kitd__consul_parse_health(NULL, 0, NULL, 0, true, NULL, &set, &n, detail, sizeof detail),
      KITD_EPROTO);
  assert_ptr_equal(set, (kitd_instance **)0x1);
  assert_int_equal(n, 77);
  const char bin[] = "[\0\xff\xfe]";
  assert_int_equal(
      kitd__consul_parse_health(bin, sizeof bin - 1, NULL, 0, true, NULL, &set, &n, NULL, 0),
      KITD_EPROTO);
  /* Embedded NUL inside a string is refused by jansson by default. */
  const char nul[] = "[{\"Service\":{\"Address\":\"a\\u0000b\",\"Port\":1}}]";
  int rc = kitd__consul_parse_health(nul, sizeof nul - 1, NULL, 0, false, NULL, &set, &n, detail,
                                     sizeof detail);
  assert_int_equal(rc, KITD_EPROTO);
}

static void test_instance_format(void **state) {
  (void)state;
  char b[KITD_INSTANCE_MAX];
  assert_int_equal(kitd__consul_instance(b, sizeof b, "10.0.0.1", 80), 0);
  assert_string_equal(b, "10.0.0.1:80");
  assert_int_equal(kitd__consul_instance(b, sizeof b, "fe80::1", 0), 0);
  assert_string_equal(b, "[fe80::1]:0");
  assert_int_equal(kitd__consul_instance(b, sizeof b, "", 1), KITD_EPROTO);
  char longh[300];
  memset(longh, 'a', sizeof longh - 1);
  longh[sizeof longh - 1] = '\0';
  assert_int_equal(kitd__consul_instance(b, sizeof b, longh, 1), KITD_EPROTO);
  longh[253] = '\0';
  assert_int_equal(kitd__consul_instance(b, sizeof b, longh, 65535), 0);
}

/* Every attribute the record carries, from one entry. */
static void test_attributes(void **state) {
  (void)state;
  static const char body[] =
      "[{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.9\",\"Datacenter\":\"dc2\","
      "\"Meta\":{\"zone\":\"eu-1a\",\"rack\":\"r7\"}},"
      "\"Service\":{\"ID\":\"u1\",\"Service\":\"users\",\"Tags\":[\"v2\",\"blue\"],"
      "\"Address\":\"10.0.0.1\",\"Port\":8080,\"Meta\":{\"zone\":\"svc-zone\",\"version\":\"2.1\"},"
      "\"Weights\":{\"Passing\":10,\"Warning\":1}},"
      "\"Checks\":[{\"Status\":\"passing\"},{\"Status\":\"warning\"}]},"
      " {\"Node\":{\"Node\":\"n2\",\"Address\":\"10.0.0.2\",\"Datacenter\":\"dc2\"},"
      "\"Service\":{\"Port\":8080,\"Meta\":{\"zone\":\"svc-zone\"},"
      "\"Weights\":{\"Passing\":10,\"Warning\":1}},"
      "\"Checks\":[{\"Status\":\"passing\"}]}]";
  kitd_instance **set = NULL;
  size_t n = 0;
  char detail[128] = "";
  assert_int_equal(kitd__consul_parse_health(body, sizeof body - 1, NULL, 0, false, NULL, &set, &n,
                                             detail, sizeof detail),
                   0);
  assert_int_equal(n, 2);
  n = kitd__instance_sort_unique(set, n);
  const kitd_instance *a = set[0], *b = set[1];
  assert_string_equal(kitd_instance_address(a), "10.0.0.1:8080");
  assert_int_equal(kitd_instance_status(a), KITD_HEALTH_WARNING);
  assert_int_equal(kitd_instance_weight(a), 1); /* warning: Weights.Warning */
  assert_int_equal(kitd_instance_tag_count(a), 2);
  assert_true(kitd_instance_has_tag(a, "v2"));
  assert_string_equal(kitd_instance_meta(a, "version"), "2.1");
  assert_string_equal(kitd_instance_node(a), "n1");
  assert_string_equal(kitd_instance_node_meta(a, "rack"), "r7");
  assert_string_equal(kitd_instance_datacenter(a), "dc2");
  assert_string_equal(kitd_instance_zone(a), "eu-1a"); /* node meta wins */
  /* The second: Node.Address, passing weight, zone from service meta. */
  assert_string_equal(kitd_instance_address(b), "10.0.0.2:8080");
  assert_int_equal(kitd_instance_status(b), KITD_HEALTH_PASSING);
  assert_int_equal(kitd_instance_weight(b), 10);
  assert_string_equal(kitd_instance_zone(b), "svc-zone");
  kitd_instance_list_free(set, n);
  /* A zone key of the caller's choosing. */
  assert_int_equal(kitd__consul_parse_health(body, sizeof body - 1, NULL, 0, false, "rack", &set,
                                             &n, detail, sizeof detail),
                   0);
  n = kitd__instance_sort_unique(set, n);
  assert_string_equal(kitd_instance_zone(set[0]), "r7");
  assert_string_equal(kitd_instance_zone(set[1]), ""); /* no "rack": not "zone" */
  kitd_instance_list_free(set, n);
  /* passing_only drops the warning one. */
  assert_int_equal(kitd__consul_parse_health(body, sizeof body - 1, NULL, 0, true, NULL, &set, &n,
                                             detail, sizeof detail),
                   0);
  assert_int_equal(n, 1);
  assert_string_equal(kitd_instance_address(set[0]), "10.0.0.2:8080");
  kitd_instance_list_free(set, n);
}

/* A bad entry's detail says who reads it. */
static void test_detail_names_consul(void **state) {
  (void)state;
  static const char body[] = "[{\"Service\":{\"Port\":\"x\"}}]";
  kitd_instance **set = NULL;
  size_t n = 0;
  char detail[128] = "";
  assert_int_equal(kitd__consul_parse_health(body, sizeof body - 1, NULL, 0, false, NULL, &set, &n,
                                             detail, sizeof detail),
                   KITD_EPROTO);
  assert_string_equal(detail, "consul: bad health answer: entry 0: Service.Port is not an integer");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_cases),          cmocka_unit_test(test_null_and_binary),
      cmocka_unit_test(test_instance_format),     cmocka_unit_test(test_attributes),
      cmocka_unit_test(test_detail_names_consul),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
