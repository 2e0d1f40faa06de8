//! Word expansion as BuildKit's shell lexer does it. The cases come from
//! BuildKit's `shell/envVarTest` (env PWD, SHELL, KOREAN, NULL) and
//! `TestProcessWithMatches`, plus escape-directive and word-splitting cases.

use std::collections::HashMap;

use barge_build::parser::{expand, expand_words};

/// `None` as expected: the word must not expand.
type Case<'a> = (&'a str, Option<&'a str>);

fn lookup_in<'a>(env: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    let map: HashMap<&str, &str> = env.iter().copied().collect();
    move |k| map.get(k).map(|v| v.to_string())
}

fn run(cases: &[Case], env: &[(&str, &str)], escape: char) -> Vec<String> {
    let lookup = lookup_in(env);
    let mut failures = Vec::new();
    for (input, expected) in cases {
        let got = expand(input, escape, &lookup);
        match (expected, &got) {
            (Some(e), Ok(g)) if e == g => {}
            (None, Err(_)) => {}
            _ => failures.push(format!("{input:?}: expected {expected:?}, got {got:?}")),
        }
    }
    failures
}

const ENV_VAR_TEST_ENV: &[(&str, &str)] = &[
    ("PWD", "/home"),
    ("SHELL", "bash"),
    ("KOREAN", "한국어"),
    ("NULL", ""),
];

/// BuildKit's `envVarTest` (the `A` and `U` lines).
const ENV_VAR_TEST: &[Case] = &[
    (r#"hello"#, Some(r#"hello"#)),
    (r#"he'll'o"#, Some(r#"hello"#)),
    (r#"he'llo"#, None),
    (r#"he\'llo"#, Some(r#"he'llo"#)),
    (r#"he\\'llo"#, None),
    (r#"abc\tdef"#, Some(r#"abctdef"#)),
    (r#""abc\tdef""#, Some(r#"abc\tdef"#)),
    (r#""abc\\tdef""#, Some(r#"abc\tdef"#)),
    (r#"'abc\tdef'"#, Some(r#"abc\tdef"#)),
    (r#"hello\"#, Some(r#"hello"#)),
    (r#"hello\\"#, Some(r#"hello\"#)),
    (r#""hello"#, None),
    (r#""hello\""#, None),
    (r#""hel'lo""#, Some(r#"hel'lo"#)),
    (r#"'hello"#, None),
    (r#"'hello\'"#, Some(r#"hello\"#)),
    (r#"'hello\there'"#, Some(r#"hello\there"#)),
    (r#"'hello\\there'"#, Some(r#"hello\\there"#)),
    (r#""''""#, Some(r#"''"#)),
    (r#"$."#, Some(r#"$."#)),
    (r#"$1"#, Some(r#""#)),
    (r#"he$1x"#, Some(r#"hex"#)),
    (r#"he$.x"#, Some(r#"he$.x"#)),
    (r#"he$pwd."#, Some(r#"he."#)),
    (r#"he$PWD"#, Some(r#"he/home"#)),
    (r#"he\$PWD"#, Some(r#"he$PWD"#)),
    (r#"he\\$PWD"#, Some(r#"he\/home"#)),
    (r#""he\$PWD""#, Some(r#"he$PWD"#)),
    (r#""he\\$PWD""#, Some(r#"he\/home"#)),
    (r#"\${}"#, Some(r#"${}"#)),
    (r#"\${}aaa"#, Some(r#"${}aaa"#)),
    (r#"he\${}"#, Some(r#"he${}"#)),
    (r#"he\${}xx"#, Some(r#"he${}xx"#)),
    (r#"${}"#, None),
    (r#"${}aaa"#, None),
    (r#"he${}"#, None),
    (r#"he${}xx"#, None),
    (r#"he${hi}"#, Some(r#"he"#)),
    (r#"he${hi}xx"#, Some(r#"hexx"#)),
    (r#"he${PWD}"#, Some(r#"he/home"#)),
    (r#"he${.}"#, None),
    (r#"he${XXX:-000}xx"#, Some(r#"he000xx"#)),
    (r#"he${PWD:-000}xx"#, Some(r#"he/homexx"#)),
    (r#"he${XXX:-$PWD}xx"#, Some(r#"he/homexx"#)),
    (r#"he${XXX:-${PWD:-yyy}}xx"#, Some(r#"he/homexx"#)),
    (r#"he${XXX:-${YYY:-yyy}}xx"#, Some(r#"heyyyxx"#)),
    (r#"he${XXX:YYY}"#, None),
    (r#"he${XXX:+${PWD}}xx"#, Some(r#"hexx"#)),
    (r#"he${PWD:+${XXX}}xx"#, Some(r#"hexx"#)),
    (r#"he${PWD:+${SHELL}}xx"#, Some(r#"hebashxx"#)),
    (r#"he${XXX:+000}xx"#, Some(r#"hexx"#)),
    (r#"he${PWD:+000}xx"#, Some(r#"he000xx"#)),
    (r#"'he${XX}'"#, Some(r#"he${XX}"#)),
    (r#""he${PWD}""#, Some(r#"he/home"#)),
    (r#""he'$PWD'""#, Some(r#"he'/home'"#)),
    (r#""$PWD""#, Some(r#"/home"#)),
    (r#"'$PWD'"#, Some(r#"$PWD"#)),
    (r#"'\$PWD'"#, Some(r#"\$PWD"#)),
    (r#"'"hello"'"#, Some(r#""hello""#)),
    (r#"'he\$PWD'"#, Some(r#"he\$PWD"#)),
    (r#"he${PWD"#, None),
    (r#"he${PWD:=000}xx"#, None),
    (r#"he${PWD:+${PWD}:}xx"#, Some(r#"he/home:xx"#)),
    (r#"he${XXX:-\$PWD:}xx"#, Some(r#"he$PWD:xx"#)),
    (r#"he${XXX:-\${PWD}z}xx"#, Some(r#"he${PWDz}xx"#)),
    (r#"안녕하세요"#, Some(r#"안녕하세요"#)),
    (r#"안'녕'하세요"#, Some(r#"안녕하세요"#)),
    (r#"안'녕하세요"#, None),
    (r#"안녕\'하세요"#, Some(r#"안녕'하세요"#)),
    (r#"안\\'녕하세요"#, None),
    (r#"안녕\t하세요"#, Some(r#"안녕t하세요"#)),
    (r#""안녕\t하세요""#, Some(r#"안녕\t하세요"#)),
    (r#"'안녕\t하세요"#, None),
    (r#"안녕하세요\"#, Some(r#"안녕하세요"#)),
    (r#"안녕하세요\\"#, Some(r#"안녕하세요\"#)),
    (r#""안녕하세요"#, None),
    (r#""안녕하세요\""#, None),
    (r#""안녕'하세요""#, Some(r#"안녕'하세요"#)),
    (r#"'안녕하세요\'"#, Some(r#"안녕하세요\"#)),
    (r#"안녕$1x"#, Some(r#"안녕x"#)),
    (r#"안녕$.x"#, Some(r#"안녕$.x"#)),
    (r#"안녕$PWD"#, Some(r#"안녕/home"#)),
    (r#"안녕\$PWD"#, Some(r#"안녕$PWD"#)),
    (r#"안녕\\$PWD"#, Some(r#"안녕\/home"#)),
    (r#"안녕${}"#, None),
    (r#"안녕${hi}xx"#, Some(r#"안녕xx"#)),
    (r#"안녕${XXX:-${YYY:-yyy}}xx"#, Some(r#"안녕yyyxx"#)),
    (r#"안녕${PWD:+${SHELL}}xx"#, Some(r#"안녕bashxx"#)),
    (r#"$KOREAN"#, Some(r#"한국어"#)),
    (r#"안녕$KOREAN"#, Some(r#"안녕한국어"#)),
    (r#"${{aaa}"#, None),
    (r#"${aaa}}"#, Some(r#"}"#)),
    (r#"${aaa"#, None),
    (r#"${{aaa:-bbb}"#, None),
    (r#"${aaa:-bbb}}"#, Some(r#"bbb}"#)),
    (r#"${aaa:-bbb"#, None),
    (r#"${aaa:-bbb}"#, Some(r#"bbb"#)),
    (r#"${aaa:-${bbb:-ccc}}"#, Some(r#"ccc"#)),
    (r#"${aaa:-bbb ${foo}"#, None),
    (r#"${aaa:-bbb {foo}"#, Some(r#"bbb {foo"#)),
    (r#"${:}"#, None),
    (r#"${:-bbb}"#, None),
    (r#"${:+bbb}"#, None),
    // Set but empty (NULL) against unset (XXX).
    (r#"${NULL-x}"#, Some(r#""#)),
    (r#"${NULL:-x}"#, Some(r#"x"#)),
    (r#"${NULL+x}"#, Some(r#"x"#)),
    (r#"${NULL:+x}"#, Some(r#""#)),
    (r#"${XXX-x}"#, Some(r#"x"#)),
    (r#"${XXX+x}"#, Some(r#""#)),
    (r#"${NULL?}"#, Some(r#""#)),
    (r#"${NULL:?}"#, None),
    (r#"${XXX?}"#, None),
    (r#"${PWD?must be set}"#, Some(r#"/home"#)),
    (r#"${PWD:?must be set}"#, Some(r#"/home"#)),
    // Special parameters and odd names.
    (r#"$"#, Some(r#"$"#)),
    (r#"a$"#, Some(r#"a$"#)),
    (r#"$ x"#, Some(r#"$ x"#)),
    (r#"$@"#, Some(r#""#)),
    (r#"$#x"#, Some(r#"x"#)),
    (r#"$12x"#, Some(r#"x"#)),
    (r#"$PWD_x"#, Some(r#""#)),
    (r#"${PWD}_x"#, Some(r#"/home_x"#)),
    (r#"$PWD-x"#, Some(r#"/home-x"#)),
    (r#"a  b"#, Some(r#"a  b"#)),
    (r#""a $SHELL"'$SHELL'"#, Some(r#"a bash$SHELL"#)),
];

#[test]
fn env_var_test_cases() {
    let failures = run(ENV_VAR_TEST, ENV_VAR_TEST_ENV, '\\');
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `${VAR#pattern}`, `%`, `/`, `?` with their own environments, from
/// BuildKit's `TestProcessWithMatches`.
#[test]
fn pattern_and_modifier_cases() {
    type EnvCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
    let foo_bar: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
    let cases: &[EnvCase] = &[
        ("x", &[("DUMMY", "dummy")], Some("x")),
        ("x ${UNUSED}", &[], Some("x ")),
        ("x ${FOO}", &[("FOO", "y")], Some("x y")),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", foo_bar, Some("xxx  ccc")),
        ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", foo_bar, Some("xxx bbb ccc")),
        ("${FOO:-}", foo_bar, Some("xxx")),
        ("${FOO:-}", &[], Some("")),
        ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", foo_bar, Some("aaa bbb ")),
        ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", foo_bar, Some("aaa  ")),
        ("${FOO?aaa}", foo_bar, Some("xxx")),
        ("${BAR?bbb}", foo_bar, Some("")),
        ("${BAZ?ccc}", foo_bar, None),
        ("${FOO:?aaa}", foo_bar, Some("xxx")),
        ("${BAR:?bbb}", foo_bar, None),
        ("${BAZ:?ccc}", foo_bar, None),
        ("${BAZ:?}", foo_bar, None),
        ("${FOO=aaa}", foo_bar, None),
        ("${FOO=:aaa}", foo_bar, None),
        ("${FOO=}", &[], None),
        (r"${FOO#()[]{\}^$.\*\?|\\}", &[("FOO", r"()[]{}^$.*?|\x")], Some("x")),
        (r"${FOO%%\**}", &[("FOO", "xx**")], Some("xx")),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
        ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
        ("${FOO##}", &[("FOO", "xxyy")], Some("xxyy")),
        (r"${FOO#?\?}", &[("FOO", "???y")], Some("?y")),
        ("${ABC:-.}${FOO%x}${ABC:-.}", &[("FOO", "xxyy")], Some(".xxyy.")),
        (r"${FOO%%\**\*}", &[("FOO", "a***yy*")], Some("a")),
        ("${FOO%}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], Some("xxyy")),
        ("${FOO:#}", &[], None),
        ("${FOO:##}", &[], None),
        ("${FOO:%}", &[], None),
        ("${FOO:%%}", &[], None),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", r"\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")],
            Some("/foo/b/c.txt - /foo/c.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[("FOO", "http://google.de"), ("NEEDLE", "http://"), ("REPLACEMENT", "https://")],
            Some("https://google.de"),
        ),
        (r"${FOO//\//\/}", &[("FOO", "/tmp/foo.txt")], Some(r"\/tmp\/foo.txt")),
        ("${FOO/$BAR/ww}", &[("FOO", "xxyy"), ("BAR", "")], Some("wwxxyy")),
        ("${FOO//ww}", &[("FOO", "xxyy")], None),
        ("${FOO//}", &[("FOO", "xxyy")], None),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO///}", &[], Some("")),
        // The reference's examples.
        ("${str#f*b}", &[("str", "foobarbaz")], Some("arbaz")),
        ("${str##f*b}", &[("str", "foobarbaz")], Some("az")),
        ("${string%b*}", &[("string", "foobarbaz")], Some("foobar")),
        ("${string%%b*}", &[("string", "foobarbaz")], Some("foo")),
        ("${string/ba/fo}", &[("string", "foobarbaz")], Some("fooforbaz")),
        ("${string//ba/fo}", &[("string", "foobarbaz")], Some("fooforfoz")),
        ("${FOO/b*/X}", &[("FOO", "abcbd")], Some("aX")),
        ("${FOO//?/-}", &[("FOO", "abc")], Some("---")),
        ("${FOO/x/y}", &[("FOO", "abc")], Some("abc")),
        (r"${FOO#\x}", &[("FOO", "xa")], None),
        ("${FOO%.tar.gz}", &[("FOO", "app.tar.gz")], Some("app")),
        ("${FOO##*/}", &[("FOO", "/usr/local/bin/tool")], Some("tool")),
        ("${FOO%/*}", &[("FOO", "/usr/local/bin/tool")], Some("/usr/local/bin")),
        (
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")],
            Some("something-v1.2.3.linux-arm-v7.tar.gz"),
        ),
        (
            "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
            &[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm64"), ("TARGETVARIANT", "")],
            Some("something-v1.2.3.linux-arm64.tar.gz"),
        ),
    ];
    let mut failures = Vec::new();
    for (input, env, expected) in cases {
        let lookup = lookup_in(env);
        let got = expand(input, '\\', &lookup);
        match (expected, &got) {
            (Some(e), Ok(g)) if e == g => {}
            (None, Err(_)) => {}
            _ => failures.push(format!(
                "{input:?} with {env:?}: expected {expected:?}, got {got:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// With `# escape=`` the backtick escapes and `\` is an ordinary char.
#[test]
fn backtick_escape_cases() {
    let cases: &[Case] = &[
        (r"c:\windows\system32", Some(r"c:\windows\system32")),
        (r"he`$PWD", Some("he$PWD")),
        (r"he``$PWD", Some("he`/home")),
        (r#""a`"b""#, Some(r#"a"b"#)),
        (r#""a`$PWD""#, Some("a$PWD")),
        (r#""a`x""#, Some("a`x")),
        (r#""a\$PWD""#, Some(r"a\/home")),
        (r"a` b", Some("a b")),
        (r"end`", Some("end")),
        (r"'`$PWD'", Some("`$PWD")),
        (r"${XXX:-`}}", Some("}")),
    ];
    let failures = run(cases, ENV_VAR_TEST_ENV, '`');
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ProcessWords: split on unquoted whitespace after expansion.
#[test]
fn word_splitting_cases() {
    let env: &[(&str, &str)] = &[
        ("hi", "hi"),
        ("space", "abc  def"),
        ("leading", "  ab c"),
        ("trailing", "ab c   "),
        ("empty", ""),
    ];
    let cases: &[(&str, &[&str])] = &[
        ("hello", &["hello"]),
        ("hello${hi}bye", &["hellohibye"]),
        ("hello${space}bye", &["helloabc", "defbye"]),
        ("hello\"${space}\"bye", &["helloabc  defbye"]),
        ("hello \"${space}\"bye", &["hello", "abc  defbye"]),
        ("hello${leading}def", &["hello", "ab", "cdef"]),
        ("hello\"${leading}\" def", &["hello  ab c", "def"]),
        ("hello${trailing}d", &["helloab", "c", "d"]),
        ("hello\"${trailing}\"d", &["helloab c   d"]),
        ("80/tcp 443/udp", &["80/tcp", "443/udp"]),
        ("  a   b  ", &["a", "b"]),
        ("a\\ b c", &["a b", "c"]),
        ("'a b' \"c d\"", &["a b", "c d"]),
        ("${empty}", &[]),
        ("\"\"", &[]),
        ("x${empty}y", &["xy"]),
    ];
    let lookup = lookup_in(env);
    let mut failures = Vec::new();
    for (input, expected) in cases {
        match expand_words(input, '\\', &lookup) {
            Ok(got) if got == *expected => {}
            got => failures.push(format!("{input:?}: expected {expected:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_name_the_word_and_the_problem() {
    let none = |_: &str| None;
    let e = expand("${A:?needs a value}", '\\', &none)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("failed to process \"${A:?needs a value}\": A: needs a value")
    );
    let e = expand("\"open", '\\', &none).err().map(|e| e.message);
    assert_eq!(
        e.as_deref(),
        Some("unexpected end of statement while looking for matching double-quote")
    );
    let e = expand("${A", '\\', &none).err().map(|e| e.message);
    assert_eq!(e.as_deref(), Some("syntax error: missing '}'"));
    let e = expand("${}", '\\', &none).err().map(|e| e.message);
    assert_eq!(e.as_deref(), Some("syntax error: bad substitution"));
    let e = expand("${A:=x}", '\\', &none).err().map(|e| e.message);
    assert_eq!(
        e.as_deref(),
        Some("unsupported modifier (:=) in substitution")
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let none = |_: &str| None;
    let deep = "${A:-".repeat(10_000) + &"}".repeat(10_000);
    assert!(expand(&deep, '\\', &none).is_err());
    let ok = "${A:-".repeat(20) + "x" + &"}".repeat(20);
    assert_eq!(expand(&ok, '\\', &none).ok().as_deref(), Some("x"));
}

#[test]
fn case_table_is_large_enough() {
    assert!(ENV_VAR_TEST.len() >= 100, "{}", ENV_VAR_TEST.len());
}
