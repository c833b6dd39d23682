//! The attach socket's protocol with real Unix-socket clients: one human at a time, the chat
//! relayed, the driving terminal's chat holding the session.

use super::*;

fn info() -> ChatInfo {
    ChatInfo {
        session: "s1".into(),
        node: "reviewer".into(),
        run_index: 0,
        description: None,
        ends: Verdict::ALL.to_vec(),
    }
}

async fn next(incoming: &mut orchestra_runtime::attach::Incoming) -> ServerMsg {
    tokio::time::timeout(Duration::from_secs(10), incoming.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_attach_socket_admits_one_human_and_relays_the_chat() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir.path().join(".orchestra/orchestra.db"), "s1");
    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind({
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        &path
    }));
    assert!(path.exists());
    let server = AttachServer::bind(
        &path,
        "s1",
        "the test".into(),
        None,
        "nobody is here".into(),
    )
    .unwrap();
    let again = AttachServer::bind(&path, "s1", "a second".into(), None, String::new());
    assert!(matches!(again, Err(AttachError::Live { .. })));

    let human = server.human();
    let err = human.open(&info()).await.err().unwrap();
    assert_eq!(err, "agent `reviewer` needs a human, and nobody is here");

    let Joined::Attached {
        driver,
        mut incoming,
        mut outgoing,
    } = connect(&path, "alice").await.unwrap()
    else {
        panic!("not admitted")
    };
    assert_eq!(driver, "the test");
    let Joined::Busy { holder } = connect(&path, "bob").await.unwrap() else {
        panic!("bob was admitted too")
    };
    assert_eq!(holder, "alice");

    let events = server.events(Arc::new(NoEvents));
    events.emit(Event::Warning {
        message: "careful".into(),
    });
    assert_eq!(
        next(&mut incoming).await,
        ServerMsg::Event {
            event: Event::Warning {
                message: "careful".into()
            }
        }
    );

    let mut chat = human.open(&info()).await.unwrap();
    chat.show(ChatEvent::Answer {
        text: "hello".into(),
    });
    assert_eq!(
        next(&mut incoming).await,
        ServerMsg::Chat {
            event: ChatEvent::Answer {
                text: "hello".into()
            }
        }
    );
    let reader = tokio::spawn(async move {
        let first = chat.read().await;
        let second = chat.read().await;
        (first, second)
    });
    assert_eq!(next(&mut incoming).await, ServerMsg::Prompt);
    outgoing.line("looks good").await.unwrap();
    assert_eq!(next(&mut incoming).await, ServerMsg::Prompt);
    drop((incoming, outgoing));
    let (first, second) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, HumanInput::Line("looks good".into()));
    assert_eq!(second, HumanInput::Left("alice disconnected".into()));

    // Alice is gone: Carol can attach, and hears how the drive ended.
    // (Keep her writing half open: closing it is how a client leaves.)
    let Joined::Attached {
        mut incoming,
        outgoing: _carol,
        ..
    } = connect(&path, "carol").await.unwrap()
    else {
        panic!("carol was refused")
    };
    server
        .finish(Outcome {
            status: "completed".into(),
            detail: None,
        })
        .await;
    assert!(matches!(
        next(&mut incoming).await,
        ServerMsg::Finished { outcome } if outcome.status == "completed"
    ));
    assert!(!path.exists(), "the socket is removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_at_the_driving_terminal_holds_the_session_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir.path().join("o.db"), "s2");
    let local: Arc<dyn Interaction> = Arc::new(ScriptedHuman(Scripted::new(&[Some("hi")])));
    let server = AttachServer::bind(
        &path,
        "s2",
        "the test".into(),
        Some((local, "the terminal of the test".into())),
        String::new(),
    )
    .unwrap();
    let human = server.human();
    let mut chat = human.open(&info()).await.unwrap();
    assert_eq!(chat.read().await, HumanInput::Line("hi".into()));
    let Joined::Busy { holder } = connect(&path, "dave").await.unwrap() else {
        panic!("dave was admitted during the terminal's chat")
    };
    assert_eq!(holder, "the terminal of the test");
    drop(chat);
    assert!(matches!(
        connect(&path, "dave").await.unwrap(),
        Joined::Attached { .. }
    ));
}
