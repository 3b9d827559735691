//! The hand-written list answer against `api.proto` and against decoding: its fields are
//! the message's, an encoded item reads as the object it was made from, and a page with
//! both kinds of item decodes as one list.

use proptest::prelude::*;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::FileDescriptorSet;

use crate::api::{EncodedItem, ListResponse, TypedObject};
use crate::list_response::{CONTINUE, ITEMS, REMAINING_ITEM_COUNT, RESOURCE_VERSION};
use crate::round_trip_test::random_object;
use crate::{Kind, Object};

/// The object as the store may keep it: no resourceVersion, and no type meta (taken out
/// through its JSON form, the one generic way to unset them).
fn stored(object: &Object) -> Vec<u8> {
    let mut value = object.to_json_value().unwrap();
    let map = value.as_object_mut().unwrap();
    map.remove("apiVersion");
    map.remove("kind");
    let mut bare = Object::from_json_value(object.kind(), value).unwrap();
    bare.metadata_mut().resource_version.clear();
    bare.encode_to_vec()
}

fn decoded(item: &EncodedItem) -> Object {
    Object::try_from(TypedObject::decode(item.as_bytes()).unwrap()).unwrap()
}

#[test]
fn the_fields_are_those_of_the_message_in_api_proto() {
    let set = FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
    let message = set
        .file
        .iter()
        .filter(|f| f.package() == "rafter.api.v1")
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == "ListResponse")
        .expect("api.proto declares ListResponse");
    let fields: Vec<(&str, u32, Type, Label, &str)> = message
        .field
        .iter()
        .map(|f| {
            (
                f.name(),
                f.number() as u32,
                f.r#type(),
                f.label(),
                f.type_name(),
            )
        })
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                "items",
                ITEMS,
                Type::Message,
                Label::Repeated,
                ".rafter.api.v1.TypedObject"
            ),
            (
                "resource_version",
                RESOURCE_VERSION,
                Type::String,
                Label::Optional,
                ""
            ),
            ("continue", CONTINUE, Type::String, Label::Optional, ""),
            (
                "remaining_item_count",
                REMAINING_ITEM_COUNT,
                Type::Int64,
                Label::Optional,
                ""
            ),
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn an_encoded_item_reads_as_its_object_with_type_meta_and_resource_version(seed in any::<u64>()) {
        for kind in Kind::all() {
            let mut object = random_object(kind, seed ^ (kind as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let item = EncodedItem::new(kind, &stored(&object), "4711");
            object.set_type_meta();
            object.metadata_mut().resource_version = "4711".to_owned();
            prop_assert_eq!(decoded(&item), object, "{}", kind);
        }
    }
}

#[test]
fn a_page_of_decoded_and_encoded_items_reads_as_one_list() {
    let objects: Vec<Object> = [Kind::Pod, Kind::ConfigMap, Kind::Node]
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let mut o = random_object(kind, i as u64 + 7);
            o.metadata_mut().resource_version = format!("{}", 10 + i);
            o
        })
        .collect();
    let page = ListResponse {
        items: vec![TypedObject::from(objects[0].clone())],
        encoded_items: objects[1..]
            .iter()
            .map(|o| EncodedItem::new(o.kind(), &stored(o), &o.metadata().resource_version))
            .collect(),
        resource_version: "12".into(),
        r#continue: "next".into(),
        remaining_item_count: 3,
    };
    let bytes = page.encode_to_vec();
    assert_eq!(bytes.len(), page.encoded_len());
    let read = ListResponse::decode(bytes.as_slice()).unwrap();
    let items: Vec<Object> = read
        .items
        .into_iter()
        .map(|t| Object::try_from(t).unwrap())
        .collect();
    assert_eq!(items, objects);
    assert!(read.encoded_items.is_empty());
    assert_eq!(read.resource_version, "12");
    assert_eq!(read.r#continue, "next");
    assert_eq!(read.remaining_item_count, 3);

    // An empty page is empty on the wire too, and a field it does not know is skipped.
    assert!(ListResponse::default().encode_to_vec().is_empty());
    let mut unknown = bytes.clone();
    prost::encoding::string::encode(9, &"later".to_owned(), &mut unknown);
    assert_eq!(
        ListResponse::decode(unknown.as_slice())
            .unwrap()
            .resource_version,
        "12"
    );
}
