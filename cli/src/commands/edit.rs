//! `rafter edit`: open an object as YAML in `$EDITOR` (default `vi`) and write back what
//! changed.
//!
//! The update carries the resourceVersion that was read, so if someone changed the
//! object meanwhile the server answers Conflict; the edited text is then kept in a file
//! whose path the error names, and nothing is overwritten.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use rafter_proto::parse_object;

use crate::kinds;
use crate::session::{GlobalArgs, Session};

/// `rafter edit`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  rafter edit deployment web\n  EDITOR=nano rafter edit svc/web\n  rafter edit nodes w1\n\nThe editor is $RAFTER_EDITOR, else $EDITOR, else vi; it is run through `sh -c`, so\nEDITOR=\"code --wait\" works."
)]
pub struct EditArgs {
    /// `KIND NAME` or `KIND/NAME`.
    #[arg(required = true, num_args = 1..=2, value_name = "KIND NAME")]
    target: Vec<String>,
}

const HEADER: &str = "# Edit the object below. Lines beginning with '#' are ignored; an unchanged file\n# cancels the edit. The object is written back with the resourceVersion read, so a\n# change made meanwhile by someone else is reported rather than overwritten.\n#\n";

fn scratch_file(kind: &str, name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    std::env::temp_dir().join(format!(
        "rafter-edit-{}-{name}-{}-{nanos}.yaml",
        kind.to_ascii_lowercase(),
        std::process::id()
    ))
}

/// Runs `rafter edit`.
pub fn run(args: EditArgs, globals: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let (kind, name, _) = kinds::target(&args.target, "edit")?;
    let session = Session::connect(globals)?;
    let namespace = kinds::namespace(kind, &session);
    let mut current = kinds::fetch(&session, kind, &namespace, &name)?;
    current.set_type_meta();
    let original = format!("{HEADER}{}", current.to_yaml()?);
    let path = scratch_file(kind.name(), &name);
    std::fs::write(&path, &original).with_context(|| format!("writing {}", path.display()))?;
    let editor = std::env::var("RAFTER_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".to_owned());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("rafter-edit")
        .arg(&path)
        .status()
        .with_context(|| format!("starting the editor {editor:?}"))?;
    if !status.success() {
        bail!(
            "the editor {editor:?} failed ({status}); nothing was changed (your text is in {})",
            path.display()
        );
    }
    let edited =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if edited == original {
        let _ = std::fs::remove_file(&path);
        println!("Edit cancelled, no changes made.");
        return Ok(ExitCode::SUCCESS);
    }
    let keep = |what: String| anyhow::anyhow!("{what}; your edit is kept in {}", path.display());
    let mut object = parse_object(&edited, &path.display().to_string())
        .map_err(|e| keep(format!("the edited text is not a valid object: {e}")))?;
    if object.kind() != kind || object.metadata().name != name {
        return Err(keep(format!(
            "the kind and name cannot be edited (still {} {name:?})",
            kind.name()
        )));
    }
    let meta = object.metadata_mut();
    if meta.resource_version.is_empty() {
        meta.resource_version = current.metadata().resource_version.clone();
    }
    if kind.info().namespaced && meta.namespace.is_empty() {
        meta.namespace = namespace.clone();
    }
    let before = current.metadata().resource_version.clone();
    match session.block_on(session.client().update(object)) {
        Ok(updated) => {
            let _ = std::fs::remove_file(&path);
            let verdict = if updated.metadata().resource_version == before {
                "unchanged"
            } else {
                "edited"
            };
            println!("{} {verdict}", kinds::qualified(kind, &name));
            Ok(ExitCode::SUCCESS)
        }
        Err(rafter_client::ClientError::Conflict { message }) => Err(keep(format!(
            "{} was changed by someone else while you edited it ({message}); run `rafter edit` again and redo the change",
            kinds::describe_target(kind, &namespace, &name)
        ))),
        Err(e) => Err(keep(format!("{:#}", kinds::explain(e, kind, &namespace, &name)))),
    }
}
