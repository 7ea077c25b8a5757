"""The words feedhub's feeds and pages use around the labels, in English, Arabic and Spanish.

Plain data, read by the config (to check ``[editions.<code>.labels]`` keys and name missing
translations) and by feeds.labels (to show them).
"""
from __future__ import annotations

#: the words feeds and pages use, in English
LABEL_KEYS: dict[str, str] = {
    "latest": "Latest news",
    "breaking": "Breaking news",
    "tag": "Tag",
    "author": "Author",
    "coverage": "Coverage",
    "feeds": "Feeds",
    "editions": "Editions",
    "group_main": "Main feeds",
    "group_sections": "Sections",
    "group_regions": "Regions",
    "group_coverage": "Coverage",
    "group_tags": "Tags",
    "group_authors": "Authors",
    "entries": "Entries",
    "updated": "Updated",
    "newest": "Newest",
    "filter": "Filter feeds",
    "no_match": "No feed matches.",
    "opml": "All feeds as OPML",
    "all_feeds": "All feeds",
    "subscribe": "Subscribe",
    "copy": "Copy",
    "copied": "Copied",
    "no_entries": "No entries yet.",
}

_BUILTIN: dict[str, dict[str, str]] = {
    "en": LABEL_KEYS,
    "ar": {
        "latest": "آخر الأخبار",
        "breaking": "أخبار عاجلة",
        "tag": "وسم",
        "author": "الكاتب",
        "coverage": "تغطية خاصة",
        "feeds": "الخلاصات",
        "editions": "الطبعات",
        "group_main": "الخلاصات الرئيسية",
        "group_sections": "الأقسام",
        "group_regions": "المناطق",
        "group_coverage": "التغطيات الخاصة",
        "group_tags": "الوسوم",
        "group_authors": "الكتّاب",
        "entries": "المواد",
        "updated": "آخر تحديث",
        "newest": "الأحدث",
        "filter": "تصفية الخلاصات",
        "no_match": "لا توجد خلاصة مطابقة.",
        "opml": "كل الخلاصات بصيغة OPML",
        "all_feeds": "كل الخلاصات",
        "subscribe": "اشترك",
        "copy": "نسخ",
        "copied": "تم النسخ",
        "no_entries": "لا توجد مواد بعد.",
    },
    "es": {
        "latest": "Últimas noticias",
        "breaking": "Última hora",
        "tag": "Etiqueta",
        "author": "Autor",
        "coverage": "Cobertura",
        "feeds": "Canales",
        "editions": "Ediciones",
        "group_main": "Canales principales",
        "group_sections": "Secciones",
        "group_regions": "Regiones",
        "group_coverage": "Coberturas",
        "group_tags": "Etiquetas",
        "group_authors": "Autores",
        "entries": "Artículos",
        "updated": "Actualizado",
        "newest": "Lo más reciente",
        "filter": "Filtrar canales",
        "no_match": "Ningún canal coincide.",
        "opml": "Todos los canales en OPML",
        "all_feeds": "Todos los canales",
        "subscribe": "Suscribirse",
        "copy": "Copiar",
        "copied": "Copiado",
        "no_entries": "Todavía no hay artículos.",
    },
}


def builtin_label(language: str, name: str) -> str | None:
    """The built-in form of a word in a language (its primary subtag), if there is one."""
    return _BUILTIN.get(language.split("-")[0].lower(), {}).get(name)
