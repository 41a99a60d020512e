/* test_json: the parser accepts RFC 8259 documents and rejects invalid ones
 * with line/col, u64 reads are exact, and the writer's output (escapes
 * included) parses back to the same values. */
#include "check.h"
#include "json.h"
#include "sp_base.h"

#include <stdlib.h>

static sp_json *parse(const char *s) {
    sp_json *j = NULL;
    int rc = sp_json_parse(&j, s, strlen(s));
    CHECK_MSG(rc == SP_OK, "parse failed for %s: %s", s, sp_errmsg());
    return j;
}

static void test_valid(void) {
    const char *doc = "{\"user_id\": 17, \"pin_id\": \"42\", \"action\": \"save\", \"ts_ms\": 1763769600000,\n"
                      " \"a\": [1, -2.5e3, true, false, null, {}, []], \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\","
                      " \"k\": 1, \"k\": 2}";
    sp_json *j = parse(doc);
    CHECK(sp_json_type(j) == SP_JSON_OBJ);
    CHECK_EQ_U64(sp_json_len(j), 8);
    uint64_t v = 0;
    CHECK(sp_json_u64(sp_json_get(j, "user_id"), &v) == 0 && v == 17);
    CHECK(sp_json_u64(sp_json_get(j, "pin_id"), &v) == 0 && v == 42);
    CHECK(sp_json_u64(sp_json_get(j, "ts_ms"), &v) == 0 && v == 1763769600000ULL);
    CHECK_STR(sp_json_str(sp_json_get(j, "action")), "save");
    CHECK(sp_json_get(j, "nope") == NULL);
    CHECK_EQ_INT(sp_json_num(sp_json_get(j, "k")), 2); /* last duplicate wins */
    const sp_json *a = sp_json_get(j, "a");
    CHECK(sp_json_type(a) == SP_JSON_ARR);
    CHECK_EQ_U64(sp_json_len(a), 7);
    CHECK_NEAR(sp_json_num(sp_json_at(a, 1)), -2500, 0);
    CHECK(sp_json_u64(sp_json_at(a, 1), &v) == -1);
    CHECK_EQ_INT(sp_json_bool(sp_json_at(a, 2)), 1);
    CHECK_EQ_INT(sp_json_bool(sp_json_at(a, 3)), 0);
    CHECK_EQ_INT(sp_json_bool(sp_json_at(a, 0)), -1);
    CHECK(sp_json_type(sp_json_at(a, 4)) == SP_JSON_NULL);
    CHECK(sp_json_type(sp_json_at(a, 5)) == SP_JSON_OBJ && sp_json_len(sp_json_at(a, 5)) == 0);
    CHECK(sp_json_at(a, 7) == NULL);
    CHECK(isnan(sp_json_num(sp_json_at(a, 2))));
    CHECK(sp_json_str(sp_json_at(a, 0)) == NULL);
    CHECK_STR(sp_json_str(sp_json_get(j, "s")), "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_STR(sp_json_key_at(j, 0), "user_id");
    CHECK(sp_json_key_at(a, 0) == NULL);
    CHECK(sp_json_get(a, "x") == NULL);
    sp_json_free(j);
    j = parse("  \"top\"  \n");
    CHECK_STR(sp_json_str(j), "top");
    sp_json_free(j);
    j = parse("-0.0e+0");
    CHECK_NEAR(sp_json_num(j), 0, 0);
    sp_json_free(j);
    /* raw UTF-8 passes through */
    j = parse("\"\xe6\x97\xa5\xe6\x9c\xac\"");
    CHECK_STR(sp_json_str(j), "\xe6\x97\xa5\xe6\x9c\xac");
    sp_json_free(j);
    /* depth 64 is fine */
    char deep[200];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = 0;
    j = parse(deep);
    CHECK(j != NULL);
    sp_json_free(j);
}

static void test_u64(void) {
    struct { const char *doc; int ok; uint64_t want; } cases[] = {
        {"18446744073709551615", 0, UINT64_MAX},
        {"18446744073709551616", -1, 0},
        {"\"17\"", 0, 17},
        {"\"18446744073709551615\"", 0, UINT64_MAX},
        {"9007199254740993", 0, 9007199254740993ULL}, /* 2^53 + 1: a double would say ...992 */
        {"0", 0, 0},
        {"-1", -1, 0},
        {"1.0", -1, 0},
        {"1e3", -1, 0},
        {"\"\"", -1, 0},
        {"\"-5\"", -1, 0},
        {"\" 5\"", -1, 0},
        {"true", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sp_json *j = parse(cases[i].doc);
        uint64_t v = 12345;
        int r = sp_json_u64(j, &v);
        CHECK_MSG(r == cases[i].ok, "%s: got %d", cases[i].doc, r);
        if (r == 0) CHECK_EQ_U64(v, cases[i].want);
        sp_json_free(j);
    }
}

static void expect_error(const char *doc, const char *where, const char *what) {
    sp_json *j = (sp_json *)1;
    int rc = sp_json_parse(&j, doc, strlen(doc));
    CHECK_MSG(rc == SP_EINPUT, "accepted %s", doc);
    CHECK(j == NULL);
    CHECK_MSG(strstr(sp_errmsg(), where) != NULL, "%s: message '%s' lacks '%s'", doc, sp_errmsg(), where);
    if (what) CHECK_MSG(strstr(sp_errmsg(), what) != NULL, "%s: message '%s' lacks '%s'", doc, sp_errmsg(), what);
}

static void test_invalid(void) {
    expect_error("", "line 1 col 1", "end of input");
    expect_error("{\"a\": 1,\n \"b\" 2}", "line 2 col 6", "':'");
    expect_error("[1, 2,]", "line 1 col 7", NULL);
    expect_error("[1 2]", "line 1 col 4", NULL);
    expect_error("{\"a\":1}x", "line 1 col 8", "end of input");
    expect_error("01", "line 1 col 1", "leading zero");
    expect_error("1.", "line 1 col 1", NULL);
    expect_error("-", "line 1 col 1", NULL);
    expect_error("1e400", "line 1 col 1", "range");
    expect_error("tru", "line 1 col 1", NULL);
    expect_error("\"abc", "line 1 col 1", "unterminated");
    expect_error("\"a\\u0000b\"", "line 1 col 3", "NUL");
    expect_error("\"a\\ud800\"", "line 1 col 3", "surrogate");
    expect_error("\"a\\udc00\"", "line 1 col 3", "surrogate");
    expect_error("\"\\x\"", "line 1 col 2", "escape");
    expect_error("\"a\tb\"", "line 1 col 3", "control");
    expect_error("\"\xff\"", "line 1 col 2", "UTF-8");
    expect_error("\"\xc0\xaf\"", "line 1 col 2", "UTF-8"); /* overlong */
    expect_error("\"\xed\xa0\x80\"", "line 1 col 2", "UTF-8"); /* encoded surrogate */
    expect_error("{1: 2}", "line 1 col 2", "key");
    expect_error("[\n\n  nul]", "line 3 col 3", NULL);
    expect_error("'a'", "line 1 col 1", NULL);
    char deep[200];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = 0;
    expect_error(deep, "line 1 col 65", "deeper");
    /* embedded NUL in the text (len covers it) */
    sp_json *j;
    CHECK_RC(sp_json_parse(&j, "\"a\0b\"", 5), SP_EINPUT);
    CHECK(strstr(sp_errmsg(), "NUL") != NULL);
    CHECK_RC(sp_json_parse(&j, "[1]", 2), SP_EINPUT); /* len respected */
}

static void test_writer(void) {
    sp_jw w;
    sp_jw_init(&w);
    sp_jw_obj_begin(&w, NULL);
    sp_jw_str(&w, "s", "q\"b\\s/\n\t\r\b\f\x01\x1f \xc3\xa9");
    sp_jw_str(&w, "k\"ey", "v");
    sp_jw_u64(&w, "u", UINT64_MAX);
    sp_jw_i64(&w, "i", INT64_MIN);
    sp_jw_f64(&w, "f", 0.1);
    sp_jw_f64(&w, "nan", NAN);
    sp_jw_bool(&w, "t", 1);
    sp_jw_arr_begin(&w, "a");
    sp_jw_u64(&w, NULL, 1);
    sp_jw_obj_begin(&w, NULL);
    sp_jw_obj_end(&w);
    sp_jw_arr_begin(&w, NULL);
    sp_jw_arr_end(&w);
    sp_jw_raw(&w, NULL, "{\"r\":[1]}");
    sp_jw_arr_end(&w);
    sp_jw_obj_end(&w);
    const char *text;
    size_t len;
    CHECK_RC(sp_jw_finish(&w, &text, &len), SP_OK);
    CHECK_EQ_U64(len, strlen(text));
    CHECK(len > 0 && text[len - 1] == '\n');
    CHECK(strchr(text, ' ') == NULL || strstr(text, "\\u001f \xc3\xa9") != NULL); /* only the string's own space */
    CHECK(strstr(text, "\"a\":[1,{},[],{\"r\":[1]}]") != NULL);
    CHECK(strstr(text, "\\u0001\\u001f") != NULL);
    sp_json *j = NULL;
    CHECK_RC(sp_json_parse(&j, text, len), SP_OK);
    CHECK_STR(sp_json_str(sp_json_get(j, "s")), "q\"b\\s/\n\t\r\b\f\x01\x1f \xc3\xa9");
    CHECK_STR(sp_json_str(sp_json_get(j, "k\"ey")), "v");
    uint64_t v;
    CHECK(sp_json_u64(sp_json_get(j, "u"), &v) == 0 && v == UINT64_MAX);
    CHECK_NEAR(sp_json_num(sp_json_get(j, "i")), (double)INT64_MIN, 0);
    CHECK(sp_json_num(sp_json_get(j, "f")) == 0.1); /* %.17g round-trips */
    CHECK(sp_json_type(sp_json_get(j, "nan")) == SP_JSON_NULL);
    CHECK_EQ_INT(sp_json_bool(sp_json_get(j, "t")), 1);
    CHECK_EQ_U64(sp_json_len(sp_json_get(j, "a")), 4);
    sp_json_free(j);
    sp_jw_free(&w);

    /* misuse: key at top level, missing key in object, unclosed */
    sp_jw_init(&w);
    sp_jw_obj_begin(&w, "k");
    CHECK_RC(sp_jw_finish(&w, &text, &len), SP_EINTERNAL);
    sp_jw_free(&w);
    sp_jw_init(&w);
    sp_jw_obj_begin(&w, NULL);
    sp_jw_u64(&w, NULL, 1);
    sp_jw_obj_end(&w);
    CHECK_RC(sp_jw_finish(&w, &text, &len), SP_EINTERNAL);
    sp_jw_free(&w);
    sp_jw_init(&w);
    sp_jw_arr_begin(&w, NULL);
    CHECK_RC(sp_jw_finish(&w, &text, &len), SP_EINTERNAL);
    sp_jw_free(&w);
    /* a big array grows the buffer */
    sp_jw_init(&w);
    sp_jw_arr_begin(&w, NULL);
    for (int i = 0; i < 10000; i++) sp_jw_i64(&w, NULL, -i);
    sp_jw_arr_end(&w);
    CHECK_RC(sp_jw_finish(&w, &text, &len), SP_OK);
    CHECK_RC(sp_json_parse(&j, text, len), SP_OK);
    CHECK_EQ_U64(sp_json_len(j), 10000);
    CHECK_NEAR(sp_json_num(sp_json_at(j, 9999)), -9999, 0);
    sp_json_free(j);
    sp_jw_free(&w);
}

int main(void) {
    test_valid();
    test_u64();
    test_invalid();
    test_writer();
    return CHECK_DONE();
}
