//! Installing from the three registries the machines reach: Debian (apt-get), PyPI (pip in
//! a venv) and npm (`npm pack`, unpacked). Nothing else is downloaded.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;
use crate::cmd::{run_quiet, which};
use crate::progress::step;

/// apt-get, with at most one `apt-get update` per run (only after an install failed).
#[derive(Debug, Default)]
pub(super) struct Apt {
    updated: bool,
}

impl Apt {
    /// Installs Debian `packages` for `service`, running `apt-get update` once if the first
    /// attempt fails (a fresh machine may have no package lists).
    pub(super) fn install(&mut self, service: &str, packages: &[&str]) -> Result<()> {
        let label = format!("{service}: installing {} (apt)", packages.join(" "));
        step(&label, || {
            let Some(apt) = which("apt-get") else {
                return Err(format!(
                    "{} is missing and there is no apt-get: install it yourself, or use docker-compose.yml",
                    packages.join(" ")
                )
                .into());
            };
            let install = || {
                run_quiet(
                    apt_command(&apt)
                        .args(["install", "-y", "-q", "--no-install-recommends"])
                        .args(packages),
                )
            };
            match install() {
                Ok(_) => Ok(()),
                Err(_) if !self.updated => {
                    self.updated = true;
                    run_quiet(apt_command(&apt).args(["update", "-q"]))?;
                    install().map(|_| ())
                }
                Err(e) => Err(e),
            }
        })
    }
}

/// `apt-get` as root, or through `sudo -n` (never prompting) when we are not root.
fn apt_command(apt: &Path) -> Command {
    let root = run_quiet(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let mut cmd = match which("sudo") {
        Some(sudo) if !root => {
            let mut c = Command::new(sudo);
            c.arg("-n").arg(apt);
            c
        }
        _ => Command::new(apt),
    };
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// Ensures a venv at `venv` holding `requirement` (e.g. `nx-27017==0.8.1`), which provides
/// `bin/<exe>`. A `.installed` stamp marks a complete install; a partial one is redone.
pub(super) fn pip_venv(
    service: &str,
    venv: &Path,
    requirement: &str,
    exe: &str,
) -> Result<PathBuf> {
    let program = venv.join("bin").join(exe);
    let stamp = venv.join(".installed");
    if stamp.is_file() && program.is_file() {
        return Ok(program);
    }
    let label = format!(
        "{service}: installing {requirement} (pip, venv {})",
        venv.display()
    );
    step(&label, || -> Result<()> {
        if venv.exists() {
            std::fs::remove_dir_all(venv)?;
        }
        let python = which("python3")
            .or_else(|| which("python"))
            .ok_or("python3 is not on PATH (needed for a venv)")?;
        run_quiet(Command::new(python).args(["-m", "venv"]).arg(venv)).map_err(|e| {
            format!("{e}\n(on Debian, `apt-get install python3-venv` provides the venv module)")
        })?;
        run_quiet(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            requirement,
        ]))?;
        if !program.is_file() {
            return Err(format!("{requirement} installed no {}", program.display()).into());
        }
        std::fs::write(&stamp, requirement)?;
        Ok(())
    })?;
    Ok(program)
}

/// Ensures `dest` holds folder `subdir` of npm package `package` (`name@version`), fetched
/// with `npm pack` and unpacked with `tar`. `dest` appears only once it is complete.
pub(super) fn npm_unpack(service: &str, package: &str, subdir: &str, dest: &Path) -> Result<()> {
    let label = format!("{service}: installing {package} (npm pack)");
    step(&label, || -> Result<()> {
        let npm = which("npm").ok_or("npm is not on PATH (needed to fetch the package)")?;
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        run_quiet(
            Command::new(npm)
                .args(["pack", "--silent", "--no-fund", "--no-audit", package])
                .current_dir(&tmp),
        )?;
        let tarball = std::fs::read_dir(&tmp)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .ok_or_else(|| format!("npm pack {package} left no .tgz in {}", tmp.display()))?;
        run_quiet(
            Command::new("tar")
                .arg("xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&tmp)
                .arg(format!("package/{subdir}")),
        )?;
        if dest.exists() {
            std::fs::remove_dir_all(dest)?;
        }
        std::fs::rename(tmp.join("package").join(subdir), dest)?;
        std::fs::remove_dir_all(&tmp)?;
        Ok(())
    })
}
