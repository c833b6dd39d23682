//! Integration tests of orchestra-store: the conformance suite on `MemoryStore`.

mod memory {
    use orchestra_store::MemoryStore;

    orchestra_store::conformance_tests!(|clock| MemoryStore::new().with_clock(clock));
}
