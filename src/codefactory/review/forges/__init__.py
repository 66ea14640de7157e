"""The forges where reviewers work: GitHub, GitLab, Azure DevOps Repos, Bitbucket.

Each adapter implements `review.port.ForgeHost` over the vendor's REST API; the factory's
own bare repository (`review.local_forge`) still builds and signs the commit, which is then
pushed to the forge (`review.forges.push`) and opened as a draft request under the sponsor's
own token (`review.forges.publishing`).
"""
