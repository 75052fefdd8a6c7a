//! Extractors whose rejections answer in the API's error format: a malformed body, a
//! missing content type or a bad query string is `400 bad_request`, an oversized body
//! `413 payload_too_large` — never axum's plain-text defaults.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// A JSON body whose rejections answer in the API's error format.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::BytesRejection(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Error::TooLarge(BODY_LIMIT))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(Error::BadRequest("send the body as JSON with Content-Type: application/json".into()))
            }
            Err(rejection) => Err(Error::BadRequest(rejection.body_text())),
        }
    }
}

/// Query parameters whose rejections answer in the API's error format.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| QueryParams(query.0))
            .map_err(|rejection: QueryRejection| Error::BadRequest(rejection.body_text()))
    }
}
