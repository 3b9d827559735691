//! `rafter apply` and `rafter validate`: manifests in, normalised objects or errors out.
//!
//! With `--dry-run=client` (and always for `validate`) nothing is sent anywhere: each
//! object is parsed, defaulted and validated, and either printed in its normalised form
//! or reported with every error it has. The exit code is 1 when any object is invalid.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use rafter_proto::{apply_defaults, parse_manifests, validate as validate_object, Object};

use crate::output::qualified_name;
use crate::session::{GlobalArgs, Session};
use crate::sources::read_sources;

/// How `apply` is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Send the objects to the cluster.
    None,
    /// Check the objects locally and send nothing.
    Client,
}

/// How normalised objects are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per object: `kind/name`.
    Name,
    /// YAML documents separated by `---`.
    Yaml,
    /// JSON: one object, or a `List` of several.
    Json,
}

/// Flags shared by `apply` and `validate`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// A manifest file, a directory of them, or - for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Recurse into sub-directories of directories given with -f.
    #[arg(short = 'R', long)]
    recursive: bool,
}

/// `rafter apply`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter apply --dry-run=client -f deployment.yaml -o yaml\n  cat pod.yaml | rafter apply --dry-run=client -f -"
)]
pub struct ApplyArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
    /// `client` checks locally and sends nothing.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    dry_run: DryRun,
    /// Output format of the normalised objects.
    #[arg(short = 'o', long, value_enum)]
    output: Option<OutputFormat>,
}

/// `rafter validate`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  rafter validate -f manifests/ -R")]
pub struct ValidateArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
    /// Print the normalised objects too.
    #[arg(short = 'o', long, value_enum)]
    output: Option<OutputFormat>,
}

/// Runs `rafter apply`.
pub fn apply(args: ApplyArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.dry_run == DryRun::Client {
        return check(
            &args.manifests,
            Some(args.output.unwrap_or(OutputFormat::Name)),
            "configured (dry run)",
        );
    }
    let (objects, invalid) = checked_objects(&args.manifests)?;
    let session = Session::connect(globals)?;
    let mut failed = invalid;
    for (given, _normalised) in objects {
        match apply_one(&session, given) {
            Ok((object, verdict)) => println!("{} {verdict}", qualified_name(&object)),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Creates the object, or, when it exists, patches the live one with the manifest
/// (strategic merge: fields the manifest names win, lists keyed by name merge).
fn apply_one(session: &Session, mut object: Object) -> anyhow::Result<(Object, &'static str)> {
    let client = session.client();
    let kind = object.kind();
    if kind.info().namespaced && object.metadata().namespace.is_empty() {
        object.metadata_mut().namespace = session.namespace().to_owned();
    }
    let (namespace, name) = (
        object.metadata().namespace.clone(),
        object.metadata().name.clone(),
    );
    match session.block_on(client.create(object.clone())) {
        Ok(created) => return Ok((created, "created")),
        Err(rafter_client::ClientError::AlreadyExists { .. }) => {}
        Err(e) => return Err(anyhow::anyhow!("{} {name:?}: {e}", kind.name())),
    }
    let before = session
        .block_on(client.get(kind, &namespace, &name))
        .with_context(|| format!("{} {name:?}", kind.name()))?;
    let mut patch = object.to_json_value()?;
    if let Some(map) = patch.as_object_mut() {
        map.remove("status");
    }
    let after = session
        .block_on(client.patch(
            kind,
            &namespace,
            &name,
            rafter_client::PatchType::StrategicMerge,
            &patch,
        ))
        .with_context(|| format!("{} {name:?}", kind.name()))?;
    let verdict = if after.metadata().resource_version == before.metadata().resource_version {
        "unchanged"
    } else {
        "configured"
    };
    Ok((after, verdict))
}

/// Runs `rafter validate`.
pub fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    check(
        &args.manifests,
        args.output.or(Some(OutputFormat::Name)),
        "valid",
    )
}

fn check(
    manifests: &ManifestArgs,
    output: Option<OutputFormat>,
    verdict: &str,
) -> anyhow::Result<ExitCode> {
    let (objects, invalid) = checked_objects(manifests)?;
    let valid: Vec<Object> = objects
        .into_iter()
        .map(|(_, normalised)| normalised)
        .collect();
    print_objects(&valid, output, verdict)?;
    if invalid > 0 {
        eprintln!("{invalid} invalid object(s), {} valid", valid.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses, defaults and validates every manifest: each valid object as given and as
/// normalised, and the number of invalid ones (reported on standard error).
fn checked_objects(manifests: &ManifestArgs) -> anyhow::Result<(Vec<(Object, Object)>, usize)> {
    let sources = read_sources(&manifests.files, manifests.recursive)?;
    let mut valid = Vec::new();
    let mut invalid = 0usize;
    for source in &sources {
        for result in parse_manifests(&source.text, &source.name) {
            let document = match result {
                Ok(document) => document,
                Err(e) => {
                    eprintln!("error: {e}");
                    invalid += 1;
                    continue;
                }
            };
            let mut given = document.object;
            given.set_type_meta();
            let mut object = given.clone();
            apply_defaults(&mut object);
            let errors = validate_object(&object);
            if errors.is_empty() {
                valid.push((given, object));
                continue;
            }
            invalid += 1;
            let meta = object.metadata();
            eprintln!(
                "error: {}: document {}: {} {:?} is invalid:",
                source.name,
                document.index,
                object.kind(),
                meta.name
            );
            for error in errors {
                eprintln!("  * {error}");
            }
        }
    }
    Ok((valid, invalid))
}

fn print_objects(
    objects: &[Object],
    output: Option<OutputFormat>,
    verdict: &str,
) -> anyhow::Result<()> {
    match output {
        None => {}
        Some(OutputFormat::Name) => {
            for object in objects {
                let info = object.kind().info();
                let group = if info.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", info.group)
                };
                println!(
                    "{}{group}/{} {verdict}",
                    info.name.to_ascii_lowercase(),
                    object.metadata().name
                );
            }
        }
        Some(OutputFormat::Yaml) => {
            for (i, object) in objects.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", object.to_yaml()?);
            }
        }
        Some(OutputFormat::Json) => {
            let mut values = objects
                .iter()
                .map(Object::to_json_value)
                .collect::<Result<Vec<_>, _>>()?;
            let value = if values.len() == 1 {
                values.remove(0)
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": values})
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
    }
    Ok(())
}
