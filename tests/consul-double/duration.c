/* SPDX-License-Identifier: MIT */
/* Go's time.ParseDuration and Duration.String, and strconv.ParseBool:
 * Consul parses ?wait and check durations with them, so the double must
 * accept and reject exactly the same texts. */
#include "double.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fmt_err(const char *fmt, const char *a, const char *b)
{
    char *s = NULL;
    if (b) (void)!asprintf(&s, fmt, a, b);
    else (void)!asprintf(&s, fmt, a);
    return s;
}

static int64_t unit_of(const char *u, size_t n)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {
        {"ns", 1},       {"us", 1000},    {"\xc2\xb5s", 1000},  {"\xce\xbcs", 1000},
        {"ms", 1000000}, {"s", NS_PER_S}, {"m", 60 * NS_PER_S}, {"h", 3600 * NS_PER_S},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0) return units[i].ns;
    return 0;
}

int go_duration_parse(const char *orig, int64_t *out, char **err)
{
    const char *s = orig;
    bool neg = false;
    unsigned long long total = 0;
    const char *bad = "time: invalid duration \"%s\"";

    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    if (strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (*s == '\0') goto invalid;
    while (*s) {
        unsigned long long v = 0, f = 0, scale = 1;
        bool pre = false, post = false, overflow = false;
        if (!(*s == '.' || (*s >= '0' && *s <= '9'))) goto invalid;
        while (*s >= '0' && *s <= '9') {
            if (v > (1ULL << 63) / 10) overflow = true;
            v = v * 10 + (unsigned)(*s - '0');
            if (v > (1ULL << 63)) overflow = true;
            s++;
            pre = true;
        }
        if (overflow) goto invalid;
        if (*s == '.') {
            s++;
            while (*s >= '0' && *s <= '9') {
                if (scale < 1000000000000000000ULL) {
                    f = f * 10 + (unsigned)(*s - '0');
                    scale *= 10;
                }
                s++;
                post = true;
            }
        }
        if (!pre && !post) goto invalid;
        const char *u = s;
        while (*s && *s != '.' && !(*s >= '0' && *s <= '9')) s++;
        if (u == s) {
            if (err) *err = fmt_err("time: missing unit in duration \"%s\"", orig, NULL);
            return -1;
        }
        int64_t unit = unit_of(u, (size_t)(s - u));
        if (unit == 0) {
            if (err) {
                char *un = strndup(u, (size_t)(s - u));
                *err = fmt_err("time: unknown unit \"%s\" in duration \"%s\"", un, orig);
                free(un);
            }
            return -1;
        }
        if (v > (1ULL << 63) / (unsigned long long)unit) goto invalid;
        v *= (unsigned long long)unit;
        if (f > 0)
            v += (unsigned long long)((long double)f * (long double)unit / (long double)scale);
        total += v;
        if (total > (1ULL << 63)) goto invalid;
    }
    if (!neg && total > (unsigned long long)INT64_MAX) goto invalid;
    *out = neg ? -(int64_t)(total - 1) - 1 : (int64_t)total;
    return 0;
invalid:
    if (err) *err = fmt_err(bad, orig, NULL);
    return -1;
}

/* Append `v` with `prec` fractional digits, trailing zeros (and a lone
 * point) dropped, as Go's fmtFrac does. */
static void put_frac(char *buf, size_t cap, unsigned long long v, int prec, const char *unit)
{
    unsigned long long p = 1;
    for (int i = 0; i < prec; i++) p *= 10;
    unsigned long long ip = v / p, fp = v % p;
    char frac[32] = "";
    if (fp) {
        snprintf(frac, sizeof frac, ".%0*llu", prec, fp);
        size_t n = strlen(frac);
        while (frac[n - 1] == '0') frac[--n] = '\0';
    }
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%llu%s%s", ip, frac, unit);
}

char *go_duration_format(int64_t d)
{
    char buf[64] = "";
    unsigned long long u = d < 0 ? -(unsigned long long)d : (unsigned long long)d;
    if (d < 0) strcpy(buf, "-");
    if (u == 0) return strdup("0s");
    if (u < 1000ULL) put_frac(buf, sizeof buf, u, 0, "ns");
    else if (u < 1000000ULL) put_frac(buf, sizeof buf, u, 3, "\xc2\xb5s");
    else if (u < 1000000000ULL) put_frac(buf, sizeof buf, u, 6, "ms");
    else {
        unsigned long long secs = u / 1000000000ULL, frac = u % 1000000000ULL;
        unsigned long long h = secs / 3600, m = (secs / 60) % 60, s = secs % 60;
        size_t n = strlen(buf);
        if (h) n += (size_t)snprintf(buf + n, sizeof buf - n, "%lluh%llum", h, m);
        else if (m) n += (size_t)snprintf(buf + n, sizeof buf - n, "%llum", m);
        put_frac(buf, sizeof buf, s * 1000000000ULL + frac, 9, "s");
    }
    return strdup(buf);
}

bool go_parse_bool(const char *s, bool *out)
{
    static const char *t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *f[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, t[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, f[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}
