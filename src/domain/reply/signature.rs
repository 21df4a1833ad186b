//! Signatures and mobile footers, read from the end of the reply.

use super::*;

/// Footers mobile and web clients append ("Sent from my iPhone"), localized.
/// Matched against a whole, short line, and only at the end of the reply.
pub(super) static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)^(?:
        sent\s(?:from|via|with|using|by|on)\s.{1,120}
      | from\smy\s(?:iphone|ipad|ipod|android|mobile|phone|cell|smartphone|tablet|galaxy|samsung|blackberry).{0,40}
      | \S+\sfrom\s(?:my\s)?mobile.{0,40}
      | get\s\[?outlook\b.{0,120}
      | von\s(?:meinem|meiner)\s.{1,60}\sgesendet\.?
      | gesendet\s(?:von|mit|vom|aus)\s.{1,80}
      | diese\snachricht\swurde\s(?:von|mit)\s.{1,80}\sgesendet\.?
      | envoyé\s(?:de|depuis|avec|à\spartir\sde)\s.{1,80}
      | obtenir\soutlook\spour\s.{1,40}
      | enviado\s(?:desde|do|da|con|com|pelo|pela)\s.{1,80}
      | obt(?:ener|er\so)\soutlook\s.{1,40}
      | inviato\s(?:da|dal|dalla|con)\s.{1,80}
      | scarica\soutlook\s.{1,40}
      | (?:verzonden|verstuurd)\s(?:vanaf|van|met|via)\s.{1,80}
      | outlook\svoor\s.{1,30}\sdownloaden
      | wysłan[eo]\s(?:z|ze|przy|przez)\s.{1,80}
      | pobierz\s(?:aplikację\s)?outlook.{0,60}
      | отправлено\s(?:с|из|со)\s.{1,80}
      | получить\soutlook.{0,40}
      | skickat\s(?:från|med)\s.{1,80}
      | hämta\soutlook.{0,40}
      | sendt\s(?:fra|med)\s.{1,80}
      | (?:skaff|få)\s.{0,10}outlook.{0,40}
      | (?:发自|来自|寄自)我的.{0,40}
      | 從我的.{0,40}傳送
      | .{1,40}から送信
      | .{0,30}outlook.{0,20}を入手
    )$")
});

/// The separator line of a signature ending at `end`: the last `-- ` with at
/// most `MAX_SIGNATURE_LINES` lines after it, or a line of underscores with at
/// most four (Hotmail and Outlook.com put one above the signature).
pub(super) fn signature_start(doc: &Doc<'_>, part: &[Part], end: usize) -> Option<usize> {
    let mut non_blank = 0;
    let mut j = end;
    while j > 0 && end - j < 3 * MAX_SIGNATURE_LINES {
        j -= 1;
        if part[j] != Part::Reply {
            return None;
        }
        match doc.kind[j] {
            Kind::SigSep => return Some(j),
            Kind::Delimiter if is_underscores(doc.lines[j]) && non_blank <= 4 => return Some(j),
            Kind::Blank => {}
            Kind::Quote | Kind::Attribution | Kind::Original | Kind::Forward | Kind::Marker => {
                return None;
            }
            _ => {
                non_blank += 1;
                if non_blank > MAX_SIGNATURE_LINES {
                    return None;
                }
            }
        }
    }
    None
}
