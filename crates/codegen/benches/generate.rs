//! Generation speed: the five specs in-process, and time per spec as the count grows.
//! The baseline, measured in the same run, is parsing the same YAML with serde_yaml alone.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::path::Path;
use tokenkit_codegen::{emit, model, read};

fn spec_texts() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs");
    tokenkit_codegen::spec_files(&dir)
        .unwrap()
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// Everything `gen` does per spec but writing: parse, model, lint, emit, format.
fn generate_one(name: &str, text: &str) -> usize {
    let spec = read::parse(name, name, text).unwrap();
    let provider = model::build(&spec).unwrap();
    assert!(tokenkit_codegen::lint::lint(&provider).is_empty());
    emit::client_rs(&provider).unwrap().len() + emit::lib_rs(&provider).unwrap().len()
}

fn five_specs(c: &mut Criterion) {
    let specs = spec_texts();
    assert_eq!(specs.len(), 5);
    let mut group = c.benchmark_group("five_specs");
    group.bench_function("baseline_yaml_parse", |b| {
        b.iter(|| {
            specs
                .iter()
                .map(|(_, text)| serde_yaml::from_str::<serde_yaml::Value>(text).unwrap())
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("generate", |b| {
        b.iter(|| {
            specs
                .iter()
                .map(|(name, text)| generate_one(name, text))
                .sum::<usize>()
        })
    });
    group.finish();
}

/// N providers: the five specs, renamed, over and over. Time per spec must stay flat.
fn scaling(c: &mut Criterion) {
    let specs = spec_texts();
    let mut group = c.benchmark_group("scaling");
    group.sample_size(10);
    for count in [10usize, 100, 1000] {
        let synthetic: Vec<(String, String)> = (0..count)
            .map(|i| {
                let (name, text) = &specs[i % specs.len()];
                (format!("{name}-{i}"), text.clone())
            })
            .collect();
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(
            BenchmarkId::new("generate", count),
            &synthetic,
            |b, specs| {
                b.iter(|| {
                    specs
                        .iter()
                        .map(|(name, text)| generate_one(name, text))
                        .sum::<usize>()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, five_specs, scaling);
criterion_main!(benches);
