"""View helpers shared by the pages: Altair charts and view state in the URL. No streamlit."""
