//! Wire types only: requests parsed at the edge into tagged enums, and responses.

pub mod token;
