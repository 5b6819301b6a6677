//! Cross-check against tickbridge-feed-sim (filled in below).
