//! The one error type of the shared crate.

use tickbridge_model::schema::DecodeError;

/// Errors from broker setup, I/O and decoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An AMQP operation failed (connection, channel, declare, publish).
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    /// A Kafka operation failed.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Local I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A message body was rejected.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The configuration cannot work; the message says how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// No broker lists this Kafka consumer group.
    #[error("Kafka consumer group {group:?} is not known to {brokers} (no member has joined it and it holds no committed offsets)")]
    UnknownGroup {
        /// Group id.
        group: String,
        /// Bootstrap servers asked.
        brokers: String,
    },
    /// A broker did not answer in time.
    #[error("{what} did not answer within {secs}s")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        secs: u64,
    },
    /// A broker refused a message for good (nack, unroutable return,
    /// permanent Kafka error).
    #[error("rejected by broker: {0}")]
    Rejected(String),
    /// The shutdown signal fired while waiting.
    #[error("shutting down")]
    Shutdown,
}

impl Error {
    /// `true` when retrying cannot help (bad config, bad credentials, a
    /// missing resource the user named), so a binary should exit instead of
    /// reconnecting forever.
    pub fn is_terminal(&self) -> bool {
        match self {
            Error::Config(_) | Error::Shutdown | Error::Decode(_) | Error::UnknownGroup { .. } => {
                true
            }
            Error::Amqp(e) => amqp_error_is_terminal(e),
            Error::Kafka(e) => matches!(
                e.rdkafka_error_code(),
                Some(
                    rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
                        | rdkafka::types::RDKafkaErrorCode::SaslAuthenticationFailed
                        | rdkafka::types::RDKafkaErrorCode::InvalidConfig
                )
            ),
            Error::Io(_) | Error::Timeout { .. } | Error::Rejected(_) => false,
        }
    }
}

/// Access refused (wrong credentials, no permission on the vhost), a
/// precondition the broker will keep failing, and a TLS certificate the
/// client does not trust never fix themselves; everything else on the wire
/// might. Read from lapin's typed errors ([`BrokerReply`]), never their text.
fn amqp_error_is_terminal(e: &lapin::Error) -> bool {
    match BrokerReply::of(e) {
        Some(r) => r.is_terminal(),
        None => crate::amqp::is_untrusted_certificate(e),
    }
}

/// What RabbitMQ said when it closed a channel or the connection, from
/// lapin's typed protocol error: the classes tickbridge acts on, and the
/// rest as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerReply {
    /// 404: a queue or exchange that does not exist.
    NotFound,
    /// 403: wrong user or password, or no permission.
    AccessRefused,
    /// 530: a vhost that does not exist, or an operation not allowed.
    NotAllowed,
    /// 406: a declare whose arguments differ from the existing resource's.
    PreconditionFailed,
    /// 405: an exclusive resource held by another connection.
    ResourceLocked,
    /// 320: the broker is shutting down or restarting.
    ConnectionForced,
    /// Any other reply code.
    Other,
}

impl BrokerReply {
    /// The broker's reply, if `e` is one.
    pub fn of(e: &lapin::Error) -> Option<Self> {
        use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
        let lapin::ErrorKind::ProtocolError(amqp) = e.kind() else {
            return None;
        };
        Some(match amqp.kind() {
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND) => Self::NotFound,
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED) => Self::AccessRefused,
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) => Self::PreconditionFailed,
            AMQPErrorKind::Soft(AMQPSoftError::RESOURCELOCKED) => Self::ResourceLocked,
            AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Self::NotAllowed,
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED) => Self::ConnectionForced,
            _ => Self::Other,
        })
    }

    /// `true` when asking again cannot get another answer.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::AccessRefused | Self::NotAllowed | Self::PreconditionFailed
        )
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The model crate's errors (decoding, local I/O, metrics set-up) keep their
/// meaning here: the same variant, so `is_terminal` treats them alike.
impl From<tickbridge_model::Error> for Error {
    fn from(e: tickbridge_model::Error) -> Self {
        match e {
            tickbridge_model::Error::Io(e) => Error::Io(e),
            tickbridge_model::Error::Decode(e) => Error::Decode(e),
            tickbridge_model::Error::Config(m) => Error::Config(m),
        }
    }
}

/// Gives a crate's own error enum the `From` impls for lapin's, rdkafka's and
/// the model crate's errors, all through [`Error`] in the variant named, so
/// whether an error is terminal is decided once ([`Error::is_terminal`]),
/// whichever way it reached the caller: `?` on a lapin or rdkafka call, or
/// wrapped by this crate. Under `cfg(test)` it also adds a test that shows
/// it, for ACCESS_REFUSED and a connection reset (it needs
/// `tickbridge-testkit` as a dev-dependency).
///
/// ```ignore
/// tickbridge_broker::wraps_broker_errors!(Error, Broker);
/// ```
#[macro_export]
macro_rules! wraps_broker_errors {
    ($error:ident, $variant:ident) => {
        impl From<$crate::__private::lapin::Error> for $error {
            fn from(e: $crate::__private::lapin::Error) -> Self {
                $error::$variant(e.into())
            }
        }

        impl From<$crate::__private::rdkafka::error::KafkaError> for $error {
            fn from(e: $crate::__private::rdkafka::error::KafkaError) -> Self {
                $error::$variant(e.into())
            }
        }

        impl From<$crate::__private::tickbridge_model::Error> for $error {
            fn from(e: $crate::__private::tickbridge_model::Error) -> Self {
                $error::$variant(e.into())
            }
        }

        #[cfg(test)]
        mod broker_error_paths {
            use super::$error;

            /// ACCESS_REFUSED is terminal whichever way it reaches this
            /// crate's error: straight from lapin (`?` on a channel call) or
            /// wrapped by the broker crate (a connect). A reset is not.
            #[test]
            fn access_refused_is_terminal_on_every_path() {
                use tickbridge_testkit::{access_refused, connection_reset};
                let direct: $error = access_refused().into();
                let wrapped: $error = $crate::Error::from(access_refused()).into();
                assert!(direct.is_terminal() && wrapped.is_terminal(), "{direct}");
                assert_eq!(direct.to_string(), wrapped.to_string());
                assert!(!$error::from(connection_reset()).is_terminal());
                assert!(!$error::from($crate::Error::from(connection_reset())).is_terminal());
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::protocol::{AMQPError, AMQPErrorKind, AMQPHardError, AMQPSoftError};

    /// A lapin error as the broker's close would produce it.
    pub(crate) fn broker_said(kind: AMQPErrorKind, text: &str) -> lapin::Error {
        lapin::ErrorKind::ProtocolError(AMQPError::new(kind, text.into())).into()
    }

    #[test]
    fn broker_replies_are_read_by_type() {
        let refused = broker_said(
            AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED),
            "ACCESS_REFUSED - Login was refused",
        );
        assert_eq!(BrokerReply::of(&refused), Some(BrokerReply::AccessRefused));
        assert!(Error::from(refused).is_terminal());
        let vhost = broker_said(
            AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED),
            "NOT_ALLOWED - vhost x not found",
        );
        assert!(Error::from(vhost).is_terminal());
        // The text alone decides nothing: a NOT_FOUND whose message happens
        // to mention ACCESS_REFUSED is still a missing queue, and retried.
        let missing = broker_said(
            AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND),
            "NOT_FOUND - no queue 'ACCESS_REFUSED'",
        );
        assert_eq!(BrokerReply::of(&missing), Some(BrokerReply::NotFound));
        assert!(!Error::from(missing).is_terminal());
        let forced = broker_said(
            AMQPErrorKind::Hard(AMQPHardError::CONNECTIONFORCED),
            "CONNECTION_FORCED - shutdown",
        );
        assert!(!Error::from(forced).is_terminal());
        let io: lapin::Error =
            lapin::ErrorKind::IOError(std::sync::Arc::new(std::io::Error::other("ACCESS_REFUSED")))
                .into();
        assert_eq!(BrokerReply::of(&io), None);
        assert!(!Error::from(io).is_terminal());
    }
}
