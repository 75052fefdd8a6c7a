//! The coordinator's prompts: `startup` (claim an instance, see who else works, pick up
//! where the last session left off) and `sign-off` (leave a summary, release the instance).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{PromptMessage, Role};
use rmcp::{prompt, prompt_router, schemars};
use serde::Deserialize;

use super::{CoordinatorMcp, WORKFLOW};

/// Arguments of the `startup` prompt.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StartupArgs {
    /// The instance to resume as (e.g. `claude_2`); a free one when absent.
    pub session_id: Option<String>,
}

#[prompt_router(vis = "pub(super)")]
impl CoordinatorMcp {
    /// Walks the model through claiming an instance and picking up where it left off.
    #[prompt(
        name = "startup",
        description = "Start a session with the coordinator: claim an instance, see who else \
        is working, read your previous state, and keep storing progress."
    )]
    async fn startup(&self, Parameters(args): Parameters<StartupArgs>) -> Vec<PromptMessage> {
        let claim = match args.session_id {
            Some(instance) => format!("Call sign_on with session_id \"{instance}\"."),
            None => "Call sign_on (no arguments) and note the session_id it returns.".to_string(),
        };
        vec![PromptMessage::new_text(
            Role::User,
            format!(
                "You share a coordinator with other Claude Code sessions on this machine and project. {claim} \
                 Then read the session://context resource to see who else is signed on and which scopes exist, \
                 and retrieve your previous state from the scope named by your session_id (session://state/<session_id>). \
                 While you work, store_data your progress there after each step. When you need another \
                 session's result, wait_for_change on its key rather than asking again and again. The workflow: {WORKFLOW}"
            ),
        )]
    }

    /// Walks the model through leaving its state behind and releasing its instance.
    #[prompt(
        name = "sign-off",
        description = "End a session: store a summary of where you are, then release your \
        instance."
    )]
    async fn sign_off_prompt(&self) -> Vec<PromptMessage> {
        vec![PromptMessage::new_text(
            Role::User,
            "Before you stop: store_data a short summary of what you did, what is left and anything the next \
             session must know, under the scope named by your session_id (key \"summary\"). Then call sign_off. \
             Your data stays; the next session that signs on as your instance will find it.",
        )]
    }
}
