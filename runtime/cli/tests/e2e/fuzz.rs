//! Bounded fuzzing in the tests: the spec parser with every connector and
//! operator kind of `weir`, on mutations of the example specs and on inputs
//! built to break parsers (deep nesting, huge numbers, aliases). The deep
//! runs are the cargo-fuzz targets of `fuzz/` (`make fuzz`); this keeps a few
//! seconds of the same entry point in every `make test`. The emitted-batch
//! target's bounded run is a unit test of `weir-engine` (`emitted.rs`).


use weir_test_support::root;

const FRAGMENTS: &[&str] = &[
    "{", "}", "[", "]", ": ", ", ", "\n", "\n  - ", "- ", "#", "'", "\"", "&a ", "*a", "!!binary ", "!!int ", "<<: *a", "${X}",
    "${", "$${", "}}", "0", "-1", "1e400", "99999999999999999999999", "18446744073709551615", "-9223372036854775809",
    "0.5", "1h", "999999999999h", "10000000000000000000s", "1MiB", "99999999999TiB", "null", "~", "true", "name: ",
    "type: ", "input: ", "inputs: [", "key_by: ", "$.", "$..a", "parallelism: ", "on_error: ", "dead-letter", "skip",
    "max_dead_letters_per_minute: ", ".dead-letter", "window: {type: tumbling, size: ", "limits: {memory: ",
    "checkpoint: {interval: ", "batch: {size: ", "state: {backend: rocksdb, dir: ", "timestamp: $.ts", "watermark: {",
    "kafka", "file", "generator", "stdout", "wasm", "\u{feff}", "\t", "\r\n", "é", "\u{0}",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let end = (at + rng.below(40)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 if !v.is_empty() => {
                let start = rng.below(v.len());
                let end = (start + rng.below(60)).min(v.len());
                let piece = v[start..end].to_vec();
                v.splice(at..at, piece);
            }
            _ => {
                let f = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                v.splice(at..at, f.iter().copied());
            }
        }
    }
    v
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).into_iter().flatten())
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "the example specs are the seeds");
    seeds.push(
        b"name: dl\nsources:\n  - {name: in, type: file, format: json_lines, path: in.jsonl, on_error: dead-letter}\n\
          operators:\n  - {name: m, plugin: m.wasm, input: in, key_by: $.k, on_error: dead-letter, max_dead_letters_per_minute: 5}\n\
          sinks:\n  - {name: out, type: stdout, input: m}\n  - {name: bad, type: stdout, input: m.dead-letter}\n  - {name: u, type: stdout, input: in.dead-letter}\n"
            .to_vec(),
    );
    seeds
}

#[test]
fn the_spec_parser_survives_mutated_specs() {
    let registry = crate::types::registry();
    let seeds = seeds();
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for seed in &seeds {
        weir_spec::fuzz_spec(seed, &registry);
    }
    for _ in 0..20_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(seed, &mut rng);
        weir_spec::fuzz_spec(&input, &registry);
    }
}

#[test]
fn the_spec_parser_survives_inputs_built_to_break_parsers() {
    let registry = crate::types::registry();
    let deep = |open: &str, close: &str, n: usize| format!("name: {}{}", open.repeat(n), close.repeat(n));
    let mut aliases = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..30 {
        let p = i - 1;
        aliases.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    aliases.push_str("name: *a29\nsources: *a29\n");
    let many_ops: String = (0..50_000).map(|i| format!("  - {{name: o{i}, plugin: p.wasm, input: o{}}}\n", i + 1)).collect();
    let inputs = [
        deep("[", "]", 100_000),
        deep("{a: ", "}", 100_000),
        deep("- ", "", 20_000),
        "name: x\n".repeat(1) + &"  ".repeat(100_000) + "y",
        aliases,
        format!("name: c\nsources: [{{name: s, type: generator}}]\noperators:\n{many_ops}sinks: [{{name: out, type: stdout, input: o0}}]\n"),
        "name: n\nbatch: {size: 18446744073709551616}\n".into(),
        "\u{feff}name: n\nsources: [{name: s, type: generator, count: -1}]\n".into(),
    ];
    for input in &inputs {
        weir_spec::fuzz_spec(input.as_bytes(), &registry);
    }
}
