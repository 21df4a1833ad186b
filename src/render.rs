//! Notification templates (minijinja). Each template is looked up first in the
//! operator's `templates/` folder, then among the copies built into the binary,
//! so an operator overrides any one file without shipping the rest.

use std::path::PathBuf;

use minijinja::Environment;

const BUILT_IN: &[(&str, &str)] = &[
    ("ack.txt", include_str!("../templates/ack.txt")),
    (
        "new_ticket.txt",
        include_str!("../templates/new_ticket.txt"),
    ),
    (
        "comment_added.txt",
        include_str!("../templates/comment_added.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("rendering {template}: {source}")]
pub struct RenderError {
    pub template: String,
    #[source]
    pub source: minijinja::Error,
}

pub struct Renderer {
    env: Environment<'static>,
}

impl Renderer {
    /// `dir`: the operator's template folder; missing files fall back to the built-in ones.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("default delimiters are valid"),
        );
        env.set_loader(move |name: &str| {
            if let Some(dir) = &dir {
                // Names are ours (template names from the outbox), never user input;
                // still, refuse anything that could leave the folder.
                if !name.contains("..") && !name.starts_with('/') {
                    match std::fs::read_to_string(dir.join(name)) {
                        Ok(text) => return Ok(Some(text)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(minijinja::Error::new(
                                minijinja::ErrorKind::TemplateNotFound,
                                e.to_string(),
                            ));
                        }
                    }
                }
            }
            Ok(BUILT_IN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, text)| text.to_string()))
        });
        Self { env }
    }

    /// Renders `<template>.txt` with `context`.
    pub fn text(&self, template: &str, context: &serde_json::Value) -> Result<String, RenderError> {
        let name = format!("{template}.txt");
        let err = |source| RenderError {
            template: name.clone(),
            source,
        };
        let tmpl = self.env.get_template(&name).map_err(err)?;
        tmpl.render(minijinja::value::Serde(context)).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_render_and_operator_files_override() {
        let ctx = serde_json::json!({
            "marker": "--- Reply above this line ---", "support_name": "Example Support", "status_label": "New",
            "recipient_name": "Alice",
            "ticket": {"id": 3, "subject": "Printer"},
            "comment": {"body": "It is on fire", "author_name": "Alice", "author_email": "a@x.test", "attachments": []},
            "recipient": {"reason": "creator"},
        });
        let text = Renderer::new(None).text("comment_added", &ctx).unwrap();
        assert!(
            text.starts_with("--- Reply above this line ---\n"),
            "{text}"
        );
        assert!(text.contains("It is on fire"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ack.txt"), "custom {{ ticket.id }}").unwrap();
        let renderer = Renderer::new(Some(dir.path().to_path_buf()));
        assert_eq!(renderer.text("ack", &ctx).unwrap(), "custom 3");
        assert!(
            renderer
                .text("comment_added", &ctx)
                .unwrap()
                .contains("It is on fire")
        );
        assert!(renderer.text("no_such_template", &ctx).is_err());
    }
}
