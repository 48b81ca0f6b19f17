//! `Publisher`: publishes events in the background, one after another as fast as the server
//! answers, and keeps every answer: the ids that got a 202, and every refusal as it came.
//! For stories where the store is copied or fills up under load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A publish that did not get a 202: its status (0: no answer), body and `Retry-After`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// The ids of the events answered 202, in order.
    pub accepted: Vec<String>,
    pub refused: Vec<Refusal>,
}

pub struct Publisher {
    answers: Arc<Mutex<Answers>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing `order.filled` events to the Herald at `base` with `key`.
    pub fn start(base: &str, key: &str) -> Self {
        let answers = Arc::new(Mutex::new(Answers::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = super::http_client();
        let (url, key) = (format!("{base}/v1/events"), key.to_owned());
        let task = tokio::spawn({
            let (answers, stop) = (Arc::clone(&answers), Arc::clone(&stop));
            async move {
                let mut n = 0_u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let sent = client
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&json!({"event_type": "order.filled", "data": {"n": n}}))
                        .send()
                        .await;
                    let answer = match sent {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let retry_after = response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            let body: Value = response.json().await.unwrap_or(Value::Null);
                            match (status, body["id"].as_str()) {
                                (202, Some(id)) => Ok(id.to_owned()),
                                _ => Err(Refusal {
                                    status,
                                    body,
                                    retry_after,
                                }),
                            }
                        }
                        Err(e) => Err(Refusal {
                            status: 0,
                            body: Value::String(e.to_string()),
                            retry_after: None,
                        }),
                    };
                    let refused = answer.is_err();
                    {
                        let mut answers = answers.lock().expect("lock");
                        match answer {
                            Ok(id) => answers.accepted.push(id),
                            Err(refusal) => answers.refused.push(refusal),
                        }
                    }
                    if refused {
                        // A refused publish is retried by a real client after a pause too.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
        Self { answers, stop, task }
    }

    /// Everything answered so far.
    pub fn answers(&self) -> Answers {
        self.answers.lock().expect("lock").clone()
    }

    /// Polls until `done` holds for the answers so far, and returns them.
    pub async fn wait(&self, what: &str, done: impl Fn(&Answers) -> bool) -> Answers {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answers = self.answers();
            if done(&answers) {
                return answers;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what}: {} accepted, last refusal {:?}",
                answers.accepted.len(),
                answers.refused.last()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops after the publish in flight, and returns every answer.
    pub async fn stop(self) -> Answers {
        self.stop.store(true, Ordering::SeqCst);
        let answers = Arc::clone(&self.answers);
        self.task.await.expect("the publisher panicked");
        answers.lock().expect("lock").clone()
    }
}
