//! [`ListResponse`], the answer to the gRPC `List` call, written by hand instead of
//! generated so that a gateway can send items already in their wire form
//! ([`EncodedItem`]): a list of 10,000 pods is then its stored bytes copied out of the
//! watch cache, not 10,000 objects decoded and encoded again.
//!
//! On the wire it is exactly the message `rafter.api.v1.ListResponse` of `api.proto`, and
//! it decodes as the generated type would, every item into [`ListResponse::items`].
//!
//! Owns the list answer's wire form and the item's; must not know where the bytes come
//! from (the store, the cache, encryption are the gateway's).

use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::api::TypedObject;
use crate::{Kind, Object};

/// `ListResponse.items` (`api.proto`).
pub(crate) const ITEMS: u32 = 1;
/// `ListResponse.resource_version`.
pub(crate) const RESOURCE_VERSION: u32 = 2;
/// `ListResponse.continue`.
pub(crate) const CONTINUE: u32 = 3;
/// `ListResponse.remaining_item_count`.
pub(crate) const REMAINING_ITEM_COUNT: u32 = 4;

/// A page of a LIST (`rafter.api.v1.ListResponse`).
#[derive(Clone, PartialEq, Default, Debug)]
pub struct ListResponse {
    /// The items, decoded. A decoded answer has all of them here.
    pub items: Vec<TypedObject>,
    /// Items already encoded, sent after [`ListResponse::items`] as more of them; decoding
    /// never fills this.
    pub encoded_items: Vec<EncodedItem>,
    /// The store revision the list was read at; watch from here.
    pub resource_version: String,
    /// Non-empty when more items remain.
    pub r#continue: String,
    /// How many items remain after this page, when known.
    pub remaining_item_count: i64,
}

/// One list item in its wire form: the bytes of a `TypedObject` holding the object.
#[derive(Clone, PartialEq, Debug)]
pub struct EncodedItem(Vec<u8>);

impl EncodedItem {
    /// The item for an object of `kind` whose protobuf encoding is `encoded` (what the
    /// store keeps: no resourceVersion, `apiVersion` and `kind` maybe absent), at
    /// `resource_version`. It decodes to what decoding `encoded`, setting the type meta
    /// and the resourceVersion, gives: protobuf merges a message field that appears twice
    /// and keeps the last of a scalar, so the two fields are appended rather than the
    /// object decoded to set them.
    pub fn new(kind: Kind, encoded: &[u8], resource_version: &str) -> EncodedItem {
        let mut tail = Object::empty(kind);
        tail.set_type_meta();
        tail.metadata_mut().resource_version = resource_version.to_owned();
        let tail = tail.encode_to_vec();
        // An empty object of the kind in a TypedObject: its field's key, then length 0.
        let empty = TypedObject::from(Object::empty(kind)).encode_to_vec();
        let key = &empty[..empty.len().saturating_sub(1)];
        let body = encoded.len() + tail.len();
        let mut bytes =
            Vec::with_capacity(key.len() + encoding::encoded_len_varint(body as u64) + body);
        bytes.extend_from_slice(key);
        encoding::encode_varint(body as u64, &mut bytes);
        bytes.extend_from_slice(encoded);
        bytes.extend_from_slice(&tail);
        EncodedItem(bytes)
    }

    /// The `TypedObject`'s bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Message for ListResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for item in &self.items {
            encoding::message::encode(ITEMS, item, buf);
        }
        for item in &self.encoded_items {
            encoding::encode_key(ITEMS, WireType::LengthDelimited, buf);
            encoding::encode_varint(item.0.len() as u64, buf);
            buf.put_slice(&item.0);
        }
        if !self.resource_version.is_empty() {
            encoding::string::encode(RESOURCE_VERSION, &self.resource_version, buf);
        }
        if !self.r#continue.is_empty() {
            encoding::string::encode(CONTINUE, &self.r#continue, buf);
        }
        if self.remaining_item_count != 0 {
            encoding::int64::encode(REMAINING_ITEM_COUNT, &self.remaining_item_count, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let field = |mut e: DecodeError, name: &'static str| {
            e.push("ListResponse", name);
            e
        };
        match tag {
            ITEMS => encoding::message::merge_repeated(wire_type, &mut self.items, buf, ctx)
                .map_err(|e| field(e, "items")),
            RESOURCE_VERSION => {
                encoding::string::merge(wire_type, &mut self.resource_version, buf, ctx)
                    .map_err(|e| field(e, "resource_version"))
            }
            CONTINUE => encoding::string::merge(wire_type, &mut self.r#continue, buf, ctx)
                .map_err(|e| field(e, "continue")),
            REMAINING_ITEM_COUNT => {
                encoding::int64::merge(wire_type, &mut self.remaining_item_count, buf, ctx)
                    .map_err(|e| field(e, "remaining_item_count"))
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let encoded: usize = self
            .encoded_items
            .iter()
            .map(|item| {
                encoding::key_len(ITEMS)
                    + encoding::encoded_len_varint(item.0.len() as u64)
                    + item.0.len()
            })
            .sum();
        encoding::message::encoded_len_repeated(ITEMS, &self.items)
            + encoded
            + if self.resource_version.is_empty() {
                0
            } else {
                encoding::string::encoded_len(RESOURCE_VERSION, &self.resource_version)
            }
            + if self.r#continue.is_empty() {
                0
            } else {
                encoding::string::encoded_len(CONTINUE, &self.r#continue)
            }
            + if self.remaining_item_count == 0 {
                0
            } else {
                encoding::int64::encoded_len(REMAINING_ITEM_COUNT, &self.remaining_item_count)
            }
    }

    fn clear(&mut self) {
        *self = ListResponse::default();
    }
}
