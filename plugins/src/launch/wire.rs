//! The rendezvous's messages on the TCP stream, little-endian and framed:
//! a rank's hello (magic, rank, world size, job) and rank 0's reply (a
//! status byte and one length-prefixed payload: the blob, or the reason the
//! job was refused).

use std::io::{self, Read, Write};

/// Opens every hello: another program connecting to the port is told apart.
const MAGIC: &[u8; 8] = b"CPTRDZV1";
/// Longest payload accepted (blob, job or reason); NCCL's id is 128 bytes.
const MAX_PAYLOAD: usize = 1 << 20;

/// What a rank says about itself when it arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Its global rank.
    pub rank: usize,
    /// The world size it was launched with.
    pub world_size: usize,
    /// What job it belongs to; every rank must report the same.
    pub job: String,
}

/// Rank 0's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Every rank arrived and agrees: the blob.
    Blob(Vec<u8>),
    /// The job cannot start, and why.
    Refused(String),
}

fn put_u32(out: &mut Vec<u8>, value: usize) -> io::Result<()> {
    let value = u32::try_from(value)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "value exceeds 32 bits"))?;
    out.extend_from_slice(&value.to_le_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() > MAX_PAYLOAD {
        let message = format!("payload of {} bytes exceeds {MAX_PAYLOAD}", bytes.len());
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    put_u32(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn get_u32(input: &mut impl Read) -> io::Result<usize> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes) as usize)
}

fn get_bytes(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let len = get_u32(input)?;
    if len > MAX_PAYLOAD {
        return Err(invalid(format!("announced payload of {len} bytes")));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Hello {
    /// Why this rank cannot join rank 0's (`rank0`) job, if it cannot: its
    /// world size or its job differs. The text names both values and is
    /// the same wherever it is computed, so every rank can report it.
    pub fn disagreement(&self, rank0: &Hello) -> Option<String> {
        if self.world_size != rank0.world_size {
            return Some(format!(
                "rank {} was launched with world size {} but rank 0 with {}; every process \
                 must have the same WORLD_SIZE and parallel.world_size",
                self.rank, self.world_size, rank0.world_size
            ));
        }
        if self.job != rank0.job {
            return Some(format!(
                "rank {} belongs to another job ({:?}; rank 0's is {:?}): every process must \
                 run the same configuration",
                self.rank, self.job, rank0.job
            ));
        }
        None
    }

    /// Sends the hello in one write.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut bytes = MAGIC.to_vec();
        put_u32(&mut bytes, self.rank)?;
        put_u32(&mut bytes, self.world_size)?;
        put_bytes(&mut bytes, self.job.as_bytes())?;
        out.write_all(&bytes)?;
        out.flush()
    }

    /// Reads a hello; `InvalidData` when the peer is not a cptrain rank.
    pub fn read_from(input: &mut impl Read) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(invalid("not a cptrain rendezvous hello".into()));
        }
        let rank = get_u32(input)?;
        let world_size = get_u32(input)?;
        let job = String::from_utf8(get_bytes(input)?)
            .map_err(|_| invalid("the job name is not UTF-8".into()))?;
        Ok(Hello {
            rank,
            world_size,
            job,
        })
    }
}

impl Reply {
    /// Sends the reply in one write.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let (status, payload) = match self {
            Reply::Blob(blob) => (0u8, blob.as_slice()),
            Reply::Refused(reason) => (1u8, reason.as_bytes()),
        };
        let mut bytes = vec![status];
        put_bytes(&mut bytes, payload)?;
        out.write_all(&bytes)?;
        out.flush()
    }

    /// Reads a reply.
    pub fn read_from(input: &mut impl Read) -> io::Result<Self> {
        let mut status = [0u8; 1];
        input.read_exact(&mut status)?;
        let payload = get_bytes(input)?;
        match status[0] {
            0 => Ok(Reply::Blob(payload)),
            1 => Ok(Reply::Refused(
                String::from_utf8_lossy(&payload).into_owned(),
            )),
            other => Err(invalid(format!("unknown reply status {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages read back as written; foreign bytes are refused.
    #[test]
    fn messages_round_trip_and_foreign_bytes_are_refused() {
        let hello = Hello {
            rank: 3,
            world_size: 8,
            job: "grid tp1 cp2 dp4".into(),
        };
        let mut bytes = Vec::new();
        hello.write_to(&mut bytes).unwrap();
        assert_eq!(Hello::read_from(&mut bytes.as_slice()).unwrap(), hello);
        for reply in [Reply::Blob(vec![7; 128]), Reply::Refused("no".into())] {
            let mut bytes = Vec::new();
            reply.write_to(&mut bytes).unwrap();
            assert_eq!(Reply::read_from(&mut bytes.as_slice()).unwrap(), reply);
        }
        let error = Hello::read_from(&mut &b"GET / HTTP/1.1\r\n\r\n"[..]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
