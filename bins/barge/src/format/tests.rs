//! Expected outputs were checked against Go's text/template with the docker
//! CLI's functions, except where a test says barge is more lenient.

use super::*;
use serde_json::json;

/// A `docker inspect`-shaped container.
fn inspect() -> Value {
    json!({
        "Id": "4f5e6a7b8c9d0e1f",
        "Name": "/web",
        "Path": "nginx",
        "Args": ["-g", "daemon off;"],
        "State": {
            "Status": "running", "Running": true, "Paused": false, "Pid": 1234,
            "ExitCode": 0, "OOMKilled": false,
            "Health": {"Status": "healthy", "FailingStreak": 0}
        },
        "Config": {
            "Hostname": "4f5e6a7b8c9d",
            "Image": "nginx:1.25",
            "Env": ["PATH=/usr/bin", "A=b"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Labels": {"com.example.x": "1", "tier": "web", "a": "b"}
        },
        "Mounts": [
            {"Type": "bind", "Source": "/srv/data", "Destination": "/data", "RW": true},
            {"Type": "volume", "Source": "/var/lib/barge/volumes/v1/_data", "Destination": "/cache", "RW": false}
        ],
        "HostConfig": {"Memory": 67108864, "NanoCpus": 0, "Binds": null, "CpuShares": 0.5},
        "NetworkSettings": {
            "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": null},
            "Networks": {
                "bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1"},
                "back": {"IPAddress": "10.0.0.5", "Gateway": "10.0.0.1"}
            }
        },
        "Empty": [], "EmptyMap": {}, "Zero": 0, "EmptyStr": "",
        "Nums": [1, 2, 3]
    })
}

/// Render on the inspect value.
fn r(t: &str) -> String {
    Template::parse(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .render(&inspect())
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

/// The error (parse or execution) a template gives on the inspect value.
fn err(t: &str) -> String {
    match Template::parse(t) {
        Err(e) => e.to_string(),
        Ok(tm) => tm.render(&inspect()).expect_err(t).to_string(),
    }
}

#[test]
fn renders_fields_functions_and_escapes() {
    let row = json!({"Repository": "busybox", "Tag": "latest", "Size": 42, "Labels": {"a": "b"}});
    let t = Template::parse("{{.Repository}}:{{.Tag}}\\t{{.Size}} {{json .Labels}} {{upper .Tag}}")
        .unwrap();
    assert_eq!(
        t.render(&row).unwrap(),
        "busybox:latest\t42 {\"a\":\"b\"} LATEST"
    );
    assert_eq!(
        Template::parse("{{.Labels.a}}")
            .unwrap()
            .render(&row)
            .unwrap(),
        "b"
    );
    assert_eq!(
        Template::parse("{{json .}}")
            .unwrap()
            .render(&json!({"x":1}))
            .unwrap(),
        "{\"x\":1}"
    );
    assert_eq!(
        Template::parse("{{.Repository}}\\n{{.Tag}}")
            .unwrap()
            .render(&row)
            .unwrap(),
        "busybox\nlatest"
    );
}

#[test]
fn values_print_like_go() {
    assert_eq!(r("{{.Name}}"), "/web");
    assert_eq!(r("{{.State.Pid}}"), "1234");
    assert_eq!(r("{{.HostConfig.Memory}}"), "67108864");
    assert_eq!(r("{{.State.Running}} {{.State.Paused}}"), "true false");
    assert_eq!(r("{{.HostConfig.CpuShares}}"), "0.5");
    assert_eq!(r("{{.Args}}"), "[-g daemon off;]");
    assert_eq!(r("{{.Config.Labels}}"), "map[a:b com.example.x:1 tier:web]");
    assert_eq!(
        r("{{.Mounts}}"),
        "[map[Destination:/data RW:true Source:/srv/data Type:bind] \
         map[Destination:/cache RW:false Source:/var/lib/barge/volumes/v1/_data Type:volume]]"
    );
    assert_eq!(r("{{.Empty}} {{.EmptyMap}}"), "[] map[]");
    assert_eq!(
        r("{{.NetworkSettings.Ports}}"),
        "map[443/tcp:<nil> 80/tcp:[map[HostIp:0.0.0.0 HostPort:8080]]]"
    );
    assert_eq!(r("{{.Nums}}"), "[1 2 3]");
    let floats = json!({"a": 1000000.0, "b": 0.00001, "c": 123456.0, "d": 2.0, "e": -1.5});
    let t = Template::parse("{{.a}} {{.b}} {{.c}} {{.d}} {{.e}}").unwrap();
    assert_eq!(t.render(&floats).unwrap(), "1e+06 1e-05 123456 2 -1.5");
    assert_eq!(
        Template::parse("{{.}}")
            .unwrap()
            .render(&json!("plain"))
            .unwrap(),
        "plain"
    );
}

#[test]
fn unknown_top_level_fields_fail_and_missing_map_keys_print_no_value() {
    // The rendered value is a Go struct in docker (inspect falls back to a
    // map with missingkey=error): a field it lacks is an error...
    let e = Template::parse("{{.Nope}}")
        .unwrap()
        .render(&json!({"ID": 1}))
        .unwrap_err();
    assert!(matches!(e, FormatError::NoField(..)), "{e}");
    assert!(
        e.to_string().contains("Nope") && e.to_string().contains("ID"),
        "{e}"
    );
    assert!(matches!(
        Template::parse("{{$.Nope}}").unwrap().render(&inspect()),
        Err(FormatError::NoField(..))
    ));
    assert!(err("{{json .Nope}}").contains("Nope"));
    let t = Template::parse("{{.Nope}}").unwrap();
    assert!(print_rows(&t, &[json!({"ID": "x"})], &|f| f.to_string()).is_err());
    // ...while the objects inside it are maps: a missing key is <no value>.
    assert_eq!(r("{{.Config.Labels.nope}}"), "<no value>");
    assert_eq!(r("{{.Config.Nope.Deeper}}"), "<no value>");
    assert_eq!(
        r("{{range .Mounts}}{{.Nope}},{{end}}"),
        "<no value>,<no value>,"
    );
    assert_eq!(r("{{.HostConfig.Binds}}"), "<no value>");
    assert_eq!(r("{{json .Config.Nope}}"), "null");
    assert_eq!(r("{{json .HostConfig.Binds}}"), "null");
    assert_eq!(r("{{print .Config.Nope}}"), "<nil>");
    // index on a string map misses with "", as docker's map[string]string.
    assert_eq!(r("{{index .Config.Labels \"nope\"}}"), "");
    assert_eq!(r("{{index .HostConfig.Binds \"nope\"}}"), "");
    assert_eq!(
        r("{{index .NetworkSettings.Networks \"nope\"}}"),
        "<no value>"
    );
    // A field of a non-object is an error.
    assert_eq!(
        err("{{.Name.Foo}}"),
        "template: :1:2: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type string"
    );
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(r("a  {{- .Name}}  b"), "a/web  b");
    assert_eq!(r("a  {{.Name -}}  b"), "a  /webb");
    assert_eq!(r("a \n {{- .Name -}} \n\t b"), "a/webb");
    assert_eq!(
        r("{{range .Mounts -}}\n  {{.Source}}\n{{- end}}"),
        "/srv/data/var/lib/barge/volumes/v1/_data"
    );
    assert_eq!(
        r("{{if .State.Running -}}\n   running\n{{- else -}}\n   stopped\n{{- end}}"),
        "running"
    );
    assert_eq!(r("x {{- /* a comment */ -}} y"), "xy");
    assert_eq!(r("{{/* c */}}y"), "y");
    assert_eq!(r("line1\n{{- /* spans\nlines */ -}}\nline2"), "line1line2");
    // A dash without a space is a negative number, not a trim marker.
    assert_eq!(r("a {{-3}}"), "a -3");
    // docker turns \t and \n into whitespace first, so trims remove them.
    assert_eq!(r("{{.Name -}}\\t{{.Id}}"), "/web4f5e6a7b8c9d0e1f");
    // Actions may span lines.
    assert_eq!(r("{{ .Name\n | upper }}"), "/WEB");
}

#[test]
fn range_over_arrays_and_maps() {
    assert_eq!(
        r("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}"),
        "/srv/data:/data /var/lib/barge/volumes/v1/_data:/cache "
    );
    // Maps range in key order.
    assert_eq!(
        r("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
        "a=b;com.example.x=1;tier=web;"
    );
    assert_eq!(r("{{range .Config.Labels}}{{.}},{{end}}"), "b,1,web,");
    assert_eq!(
        r("{{range $i, $m := .Mounts}}{{$i}}={{$m.Type}};{{end}}"),
        "0=bind;1=volume;"
    );
    assert_eq!(r("{{range $m := .Mounts}}{{$m.RW}},{{end}}"), "true,false,");
    assert_eq!(
        r("{{range $i, $a := .Args}}{{if $i}}, {{end}}{{$a}}{{end}}"),
        "-g, daemon off;"
    );
    assert_eq!(
        r("{{range $n, $net := .NetworkSettings.Networks}}{{$n}}:{{$net.IPAddress}} {{end}}"),
        "back:10.0.0.5 bridge:172.17.0.2 "
    );
    assert_eq!(
        r("{{range .NetworkSettings.Networks}}{{$.Name}}@{{.IPAddress}} {{end}}"),
        "/web@10.0.0.5 /web@172.17.0.2 "
    );
    assert_eq!(
        r("{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{if $conf}}{{(index $conf 0).HostPort}}{{else}}none{{end}} {{end}}"),
        "443/tcp -> none 80/tcp -> 8080 "
    );
    assert_eq!(r("{{range .Empty}}x{{else}}none{{end}}"), "none");
    assert_eq!(r("{{range .EmptyMap}}x{{else}}none{{end}}"), "none");
    assert_eq!(r("{{range .HostConfig.Binds}}x{{else}}none{{end}}"), "none");
    assert_eq!(
        r("{{range .Nums}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}"),
        "13"
    );
    assert_eq!(
        r("{{range .Nums}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}"),
        "1"
    );
    // Go 1.22: range over an integer.
    assert_eq!(r("{{range 3}}{{.}}{{end}}"), "012");
    assert_eq!(r("{{range $i := 2}}{{$i}}{{end}}"), "01");
    assert!(err("{{range .Name}}{{end}}").contains("range can't iterate over /web"));
}

#[test]
fn if_else_chains_and_truthiness() {
    assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}"), "up");
    assert_eq!(
        r("{{if .State.Paused}}paused{{else if .State.Running}}running{{else}}stopped{{end}}"),
        "running"
    );
    assert_eq!(
        r("{{if .State.Paused}}p{{else if .Zero}}z{{else}}neither{{end}}"),
        "neither"
    );
    for (x, want) in [
        (".State.Running", "t"),
        (".State.Paused", "f"),
        (".Zero", "f"),
        (".State.Pid", "t"),
        (".EmptyStr", "f"),
        (".Name", "t"),
        (".Empty", "f"),
        (".Mounts", "t"),
        (".EmptyMap", "f"),
        (".State", "t"),
        (".Config.Nope", "f"),
        (".HostConfig.Binds", "f"),
        (".HostConfig.CpuShares", "t"),
    ] {
        assert_eq!(
            r(&format!("{{{{if {x}}}}}t{{{{else}}}}f{{{{end}}}}")),
            want,
            "{x}"
        );
    }
    assert_eq!(r("{{if not .Empty}}empty{{else}}has{{end}}"), "empty");
    assert_eq!(
        r("{{if and .State.Running (eq .State.Status \"running\")}}yes{{end}}"),
        "yes"
    );
    // docker inspect's raw-map fallback compares numbers of any kind.
    assert_eq!(r("{{if eq 0.0 .State.ExitCode}}ok{{end}}"), "ok");
}

#[test]
fn with_sets_dot() {
    assert_eq!(
        r("{{with .State.Health}}{{.Status}}{{else}}none{{end}}"),
        "healthy"
    );
    assert_eq!(r("{{with .Config.Nope}}{{.}}{{else}}none{{end}}"), "none");
    assert_eq!(
        r("{{with $h := .State.Health}}{{$h.FailingStreak}}{{end}}"),
        "0"
    );
    assert_eq!(
        r("{{with .Config}}{{.Hostname}} {{$.Name}}{{end}}"),
        "4f5e6a7b8c9d /web"
    );
    assert_eq!(
        r("{{with index .NetworkSettings.Networks \"bridge\"}}{{.IPAddress}}/{{.Gateway}}{{end}}"),
        "172.17.0.2/172.17.0.1"
    );
    // Go 1.23: else with.
    assert_eq!(
        r("{{with .Config.Nope}}a{{else with .Name}}{{.}}{{end}}"),
        "/web"
    );
}

#[test]
fn variables_scope_and_assignment() {
    assert_eq!(r("{{$v := .Name}}{{$v}}"), "/web");
    assert_eq!(r("{{$v := 1}}{{range .Nums}}{{$v = .}}{{end}}{{$v}}"), "3");
    assert_eq!(
        r("{{$x := \"a\"}}{{if true}}{{$x := \"b\"}}{{$x}}{{end}}{{$x}}"),
        "ba"
    );
    assert_eq!(
        r("{{$x := 5}}{{$x}}{{with .Config}}{{$x}}{{$x = 6}}{{end}}{{$x}}"),
        "556"
    );
    assert_eq!(r("{{if $y := .Name}}{{$y}}{{end}}"), "/web");
    assert_eq!(r("{{$x := (index .Mounts 0)}}{{$x.Source}}"), "/srv/data");
    assert_eq!(
        r("{{$.Name}} {{range .Args}}{{$.Id}}{{end}}"),
        "/web 4f5e6a7b8c9d0e1f4f5e6a7b8c9d0e1f"
    );
    assert_eq!(
        r("{{range .Config.Env}}{{$kv := split . \"=\"}}{{index $kv 0}} {{end}}"),
        "PATH A "
    );
    assert_eq!(
        err("{{range $i, $e := .Args}}{{end}}{{$i}}"),
        "template: :1: undefined variable \"$i\""
    );
}

#[test]
fn string_functions() {
    assert_eq!(r("{{upper .Name}} {{lower \"ABC\"}}"), "/WEB abc");
    assert_eq!(r("{{title \"hello wide world\"}}"), "Hello Wide World");
    assert_eq!(r("{{title \"foo-bar_baz x.y\"}}"), "Foo-Bar_baz X.Y");
    assert_eq!(r("{{split .Config.Image \":\"}}"), "[nginx 1.25]");
    assert_eq!(r("{{split \"abc\" \"\"}}"), "[a b c]");
    assert_eq!(r("{{join .Args \",\"}}"), "-g,daemon off;");
    assert_eq!(r("{{join .Config.Cmd \" \"}}"), "nginx -g daemon off;");
    assert_eq!(r("{{join .HostConfig.Binds \",\"}}"), "");
    assert_eq!(r("{{pad .Name 2 3}}|{{pad .EmptyStr 2 3}}|"), "  /web   ||");
    assert_eq!(
        r("{{truncate .Id 4}} {{truncate .Id 40}}"),
        "4f5e 4f5e6a7b8c9d0e1f"
    );
    assert_eq!(
        r("{{html \"<a href='x'>&</a>\"}}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
    );
    assert_eq!(r("{{js \"a'b<\"}}"), "a\\'b\\u003C");
    assert_eq!(r("{{urlquery \"a b&c\"}}"), "a+b%26c");
    assert_eq!(
        err("{{upper .State.Pid}}"),
        "template: :1:2: executing \"\" at <upper .State.Pid>: wrong type for value; expected string; got int"
    );
    assert!(err("{{upper .Config.Nope}}").contains("invalid value; expected string"));
    assert!(err("{{join .Name \",\"}}").contains("expected []string; got string"));
}

#[test]
fn index_len_and_slice() {
    assert_eq!(r("{{index .Config.Labels \"com.example.x\"}}"), "1");
    assert_eq!(
        r("{{index .Mounts 1 \"Source\"}}"),
        "/var/lib/barge/volumes/v1/_data"
    );
    assert_eq!(
        r("{{index .NetworkSettings.Ports \"80/tcp\" 0 \"HostPort\"}}"),
        "8080"
    );
    assert_eq!(r("{{(index .Mounts 0).Type}}"), "bind");
    assert_eq!(
        r("{{(index .NetworkSettings.Networks \"back\").IPAddress}}"),
        "10.0.0.5"
    );
    assert_eq!(r("{{index (split .Config.Image \":\") 0}}"), "nginx");
    assert_eq!(r("{{index .Nums 1}} {{index \"abc\" 1}}"), "2 98");
    assert_eq!(
        r("{{len .Mounts}} {{len .Config.Labels}} {{len .Name}} {{len \"héllo\"}}"),
        "2 3 4 6"
    );
    assert_eq!(r("{{len .HostConfig.Binds}}"), "0");
    assert_eq!(
        r("{{slice .Args 1}} {{slice .Name 1 3}}"),
        "[daemon off;] we"
    );
    assert_eq!(
        err("{{index .Args 5}}"),
        "template: :1:2: executing \"\" at <index .Args 5>: error calling index: index out of range: 5"
    );
    assert!(err("{{index .Config.Labels 1}}").contains("value has type int; should be string"));
    assert!(err("{{len .State.Pid}}").contains("len of type int"));
}

#[test]
fn printf_print_and_println() {
    assert_eq!(r("{{printf \"%-6s|\" .Name}}"), "/web  |");
    assert_eq!(r("{{printf \"%6s|\" .Name}}"), "  /web|");
    assert_eq!(
        r("{{printf \"%5d|%-5d|%05d\" .State.Pid .State.Pid .State.Pid}}"),
        " 1234|1234 |01234"
    );
    assert_eq!(
        r("{{printf \"%v %q %t\" .Args .Name .State.Running}}"),
        "[-g daemon off;] \"/web\" true"
    );
    assert_eq!(r("{{printf \"%q\" .Args}}"), "[\"-g\" \"daemon off;\"]");
    assert_eq!(
        r("{{printf \"%x %X %o %b %#x\" 255 255 8 5 255}}"),
        "ff FF 10 101 0xff"
    );
    assert_eq!(
        r("{{printf \"%.2f|%8.3f|%e|%g\" 0.5 0.5 0.5 1e6}}"),
        "0.50|   0.500|5.000000e-01|1e+06"
    );
    assert_eq!(
        r("{{printf \"%.3s|%%|%c|%U\" .Name 65 65}}"),
        "/we|%|A|U+0041"
    );
    assert_eq!(
        r("{{printf \"%+d % d %08.3f\" 5 5 -3.5}}"),
        "+5  5 -003.500"
    );
    assert_eq!(
        r("{{printf \"%T %T %T\" .Name .State.Pid .Config.Labels}}"),
        "string int map[string]interface {}"
    );
    assert_eq!(
        r("{{printf \"%[2]s %[1]s\" \"a\" \"b\"}}|{{printf \"%*d|%-*d|\" 3 7 3 7}}"),
        "b a|  7|7  |"
    );
    assert_eq!(
        r("{{printf \"%v\" .Config.Labels}}"),
        "map[a:b com.example.x:1 tier:web]"
    );
    // Go's complaints, in the output rather than as errors.
    assert_eq!(r("{{printf \"%s\" .State.Pid}}"), "%!s(int=1234)");
    assert_eq!(r("{{printf \"%d\" .Name}}"), "%!d(string=/web)");
    assert_eq!(r("{{printf \"%d\"}}"), "%!d(MISSING)");
    assert_eq!(
        r("{{printf \"%s\" .Name .Id}}"),
        "/web%!(EXTRA string=4f5e6a7b8c9d0e1f)"
    );
    assert_eq!(
        r("{{printf \"%v|%s\" .Config.Nope .Config.Nope}}"),
        "<nil>|%!s(<nil>)"
    );
    assert_eq!(r("{{println .Name .State.Pid}}"), "/web 1234\n");
    assert_eq!(
        r("{{print .Name .State.Pid}}|{{print 1 2}}|{{print \"a\" \"b\"}}"),
        "/web1234|1 2|ab"
    );
    assert_eq!(r("{{printf \"%q\" \"tab\\there é\"}}"), "\"tab\\there é\"");
}

#[test]
fn comparisons_and_logic() {
    assert_eq!(
        r("{{eq .State.Status \"running\"}} {{eq .State.Status \"a\" \"running\"}}"),
        "true true"
    );
    assert_eq!(r("{{ne .State.Pid 1234}}"), "false");
    assert_eq!(
        r("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 2 3}} {{lt \"a\" \"b\"}}"),
        "true true false false true"
    );
    assert_eq!(r("{{eq .Config.Nope \"x\"}}"), "false");
    assert_eq!(
        r("{{and .State.Running .Name}} {{and .State.Paused .Name}}"),
        "/web false"
    );
    assert_eq!(
        r("{{or .EmptyStr \"default\"}} {{or .Name \"default\"}}"),
        "default /web"
    );
    assert_eq!(r("{{not .State.Running}} {{not .Zero}}"), "false true");
    assert_eq!(r("{{and 1 0 2}} {{or 0 \"\" .Args}}"), "0 [-g daemon off;]");
    // and/or stop at the deciding argument.
    assert_eq!(r("{{or .Name (index .Args 9)}}"), "/web");
    assert!(err("{{eq 1 \"a\"}}").contains("incompatible types for comparison"));
    assert!(err("{{lt true false}}").contains("invalid type for comparison"));
}

#[test]
fn pipelines_parentheses_and_literals() {
    assert_eq!(r("{{.Name | upper}}"), "/WEB");
    assert_eq!(r("{{.Name | printf \"%s-%s\" \"x\"}}"), "x-/web");
    assert_eq!(r("{{.Config.Env | len | printf \"%03d\"}}"), "002");
    assert_eq!(r("{{.State.ExitCode | eq 0}}"), "true");
    assert_eq!(
        r("{{printf \"%v|%v\" (index .Mounts 0).RW (len .Args)}}"),
        "true|2"
    );
    assert_eq!(
        r("{{ (index .Mounts 1).Source | printf \"%q\" }}"),
        "\"/var/lib/barge/volumes/v1/_data\""
    );
    assert_eq!(
        r("{{\"x\"}} {{`raw\\n`}} {{1.5}} {{1e3}} {{true}} {{'a'}} {{0x1F}} {{-3}} {{1_000}}"),
        "x raw\\n 1.5 1000 true 97 31 -3 1000"
    );
    assert_eq!(r("{{\"a\\tb\\x41\\u00e9\"}}"), "a\tbAé");
}

#[test]
fn json_function_encodes_like_go() {
    assert_eq!(
        r("{{json .State}}"),
        r#"{"ExitCode":0,"Health":{"FailingStreak":0,"Status":"healthy"},"OOMKilled":false,"Paused":false,"Pid":1234,"Running":true,"Status":"running"}"#
    );
    assert_eq!(r("{{json .Args}}"), r#"["-g","daemon off;"]"#);
    assert_eq!(r("{{json \"<&>\"}}"), r#""<&>""#);
    assert_eq!(
        r("{{json 1.5}} {{json 2.0}} {{json 1e21}} {{json 1e-7}}"),
        "1.5 2 1e+21 1e-7"
    );
    assert_eq!(r("{{json \"a\\nb\\u2028\"}}"), r#""a\nb\u2028""#);
}

#[test]
fn define_template_and_block() {
    assert_eq!(
        r("{{define \"t\"}}[{{.}}]{{end}}{{template \"t\" .Name}}{{template \"t\" .State.Pid}}"),
        "[/web][1234]"
    );
    assert_eq!(r("{{block \"b\" .State}}{{.Status}}{{end}}"), "running");
    assert!(err("{{template \"nope\"}}").contains("template \"nope\" not defined"));
}

#[test]
fn parse_errors() {
    for (t, want) in [
        ("{{nosuch .X}}", "function \"nosuch\" not defined"),
        ("{{.X", "unclosed action"),
        ("{{if .Name}}x", "unexpected EOF"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{else}}", "unexpected {{else}}"),
        ("{{$undefined}}", "undefined variable \"$undefined\""),
        ("{{break}}", "{{break}} outside {{range}}"),
        ("{{\"open}}", "unterminated quoted string"),
        ("{{1x}}", "bad number syntax"),
        ("{{(1}}", "unclosed left paren"),
        ("{{if}}{{end}}", "missing value for if"),
        (
            "{{.Name | \"x\"}}",
            "non executable command in pipeline stage 2",
        ),
        (
            "{{with .X}}{{else}}{{else}}{{end}}",
            "expected end; found {{else}}",
        ),
        ("{{ /* no */ }}", "unexpected"),
        ("{{/* open", "unclosed comment"),
    ] {
        let e = Template::parse(t).expect_err(t).to_string();
        assert!(e.contains(want), "{t}: {e}");
    }
}

#[test]
fn execution_errors() {
    assert!(err("{{.Name 1}}").contains("Name is not a method but has arguments"));
    assert!(err("{{\"x\" 1}}").contains("can't give argument to non-function \"x\""));
    assert!(err("{{nil}}").contains("nil is not a command"));
    assert!(err("{{len}}").contains("wrong number of args for len: want 1 got 0"));
    assert!(err("{{index .HostConfig.Binds 0}}").contains("index of untyped nil"));
}

#[test]
fn table_prints_titles_and_aligns() {
    let t = Template::parse("table {{.Repository}}\\t{{.Tag}}").unwrap();
    let rows = vec![
        json!({"Repository": "busybox", "Tag": "1"}),
        json!({"Repository": "a", "Tag": "latest"}),
    ];
    let title = |f: &str| f.to_uppercase();
    let out = print_rows(&t, &rows, &title).unwrap();
    assert_eq!(
        out,
        "REPOSITORY   TAG\nbusybox      1\na            latest\n"
    );
    assert!(t.is_table());
    assert!(!Template::parse("{{.Repository}}").unwrap().is_table());
}

#[test]
fn table_header_titles_complex_actions() {
    let title = |f: &str| match f {
        "ID" => "CONTAINER ID".to_string(),
        other => other.to_uppercase(),
    };
    let h = |t: &str| Template::parse(t).unwrap().header(&title);
    assert_eq!(h("table {{.ID}}\t{{.Names}}"), "CONTAINER ID\tNAMES");
    // docker's header functions leave titles alone; others apply.
    assert_eq!(
        h("table {{.Names | upper}}|{{json .Labels}}|{{lower .ID}}"),
        "NAMES|LABELS|CONTAINER ID"
    );
    assert_eq!(h("table {{printf \"%-8s\" .Status}}|"), "STATUS  |");
    assert_eq!(h("table {{pad .Size 1 1}}"), " SIZE ");
    // Chains, failures, non-strings and blocks: the last field's title.
    assert_eq!(h("table {{.State.Pid}}"), "PID");
    assert_eq!(
        h("table {{index .Config.Labels \"com.example.x\"}}"),
        "LABELS"
    );
    assert_eq!(h("table {{len .Mounts}}"), "MOUNTS");
    assert_eq!(
        h("table {{range .Mounts}}{{.Source}} {{end}}\t{{.ID}}"),
        "MOUNTS\tCONTAINER ID"
    );
    assert_eq!(
        h("table {{if .State.Running}}up{{else}}down{{end}}"),
        "RUNNING"
    );
    assert_eq!(h("table {{with .State}}{{.Status}}{{end}}"), "STATE");
    assert_eq!(h("table {{$n := .Names}}{{$n}}"), "NAMES");
    assert_eq!(h("table {{\"lit\"}}:{{.}}:"), "lit::");
    let t = Template::parse("table {{.Names}}\\t{{if .Up}}up{{else}}down{{end}}").unwrap();
    let rows = [
        json!({"Names": "web", "Up": true}),
        json!({"Names": "db", "Up": false}),
    ];
    assert_eq!(
        print_rows(&t, &rows, &title).unwrap(),
        "NAMES     UP\nweb       up\ndb        down\n"
    );
}

#[test]
fn go_float_formatting() {
    use gofmt::sprintf;
    let f = |fmt: &str, v: f64| sprintf(fmt, &[json!(v)]);
    assert_eq!(f("%v", 1e21), "1e+21");
    assert_eq!(f("%v", 123456789.0), "1.23456789e+08");
    assert_eq!(f("%v", 0.0001), "0.0001");
    assert_eq!(f("%v", 0.0), "0");
    assert_eq!(f("%.3g", 1234.5678), "1.23e+03");
    assert_eq!(f("%.3g", 1.0), "1");
    assert_eq!(f("%e", 0.0), "0.000000e+00");
    assert_eq!(f("%+.2e", 12345.678), "+1.23e+04");
    assert_eq!(f("%10.4v|", 1.23456), "     1.235|");
    assert_eq!(f("%5.1f%%", 12.345), " 12.3%");
    assert_eq!(
        gofmt::quote("a\"b\\\u{1}\u{a0}é"),
        "\"a\\\"b\\\\\\x01\\u00a0é\""
    );
}
