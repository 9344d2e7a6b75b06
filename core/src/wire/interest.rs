//! Request / unrequest / provide / unprovide: what a peer wants and what it holds.

use serde::{Deserialize, Serialize};

use crate::chunks::ByteRange;
use crate::ids::ContentId;

/// A content and an optional byte range (`None`: the whole content).
///
/// Requests cover every chunk the range touches; provides cover only whole chunks.
/// A range may be open-ended (`end: None`), which for live content includes chunks that do
/// not exist yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interest {
    /// Which content.
    pub content: ContentId,
    /// Which bytes; `None` is the whole content.
    pub range: Option<crate::chunks::ByteRange>,
}

impl Interest {
    /// The whole content.
    pub fn all(content: ContentId) -> Self {
        Self { content, range: None }
    }

    /// A byte range of the content.
    pub fn range(content: ContentId, range: ByteRange) -> Self {
        Self { content, range: Some(range) }
    }
}
